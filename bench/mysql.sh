#!/usr/bin/env bash
# shellcheck disable=SC2016 # single quotes on purpose: bash -c scripts
# MySQL/MariaDB dump and restore next to the tools people use by hand, on the
# MariaDB 10.11 test server (scripts/testenv.sh):
#
#   bench/mysql.sh                       # 300,000 orders, 1 round
#   ROWS=1000000 bench/mysql.sh
#
#   D1  backproof backup (driver dump -> zstd -> local destination, manifest)
#   D0  mariadb-dump --single-transaction DB | zstd -q -3 > FILE
#   R1  backproof restore --to an empty database
#   R0  zstd -dc FILE | mariadb DB       (the same dump, loaded by the client)
# Each timed with GNU time (wall seconds, peak RSS). Needs mariadb-client on the
# host (apt-get install mariadb-client). 127.0.0.1 only.
set -euo pipefail
export LC_ALL=C

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"
ROWS=${ROWS:-300000}
export BACKPROOF_TESTENV_DIR=${BACKPROOF_TESTENV_DIR:-/tmp/bp-bench}
command -v mariadb-dump >/dev/null || die "mariadb-dump missing: apt-get install mariadb-client"

STARTED_TESTENV=''
WORK=$(mktemp -d /tmp/bp-bench-mysql.XXXXXX)
cleanup() {
  local rc=$?
  rm -rf "$WORK"
  testenv_down
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

testenv_up
# shellcheck source=/dev/null
. "$BACKPROOF_TESTENV_DIR/env"
DSN=$BACKPROOF_TEST_MARIADB_DSN
hostport=${DSN#*@}; hostport=${hostport%%/*}
HOST=${hostport%:*} PORT=${hostport##*:}
loopback "$HOST" || die "not a loopback server: $HOST"
userinfo=${DSN#mysql://}; userinfo=${userinfo%%@*}
export MYSQL_PWD=${userinfo#*:}
client() { mariadb -h "$HOST" -P "$PORT" -u root "$@"; }

say "seeding $ROWS orders"
client -e "DROP DATABASE IF EXISTS bench; DROP DATABASE IF EXISTS bench_r1; DROP DATABASE IF EXISTS bench_r0;
CREATE DATABASE bench; CREATE DATABASE bench_r1; CREATE DATABASE bench_r0;
CREATE TABLE bench.orders (id INT PRIMARY KEY, customer VARCHAR(20), status VARCHAR(10), total DECIMAL(12,2),
  note VARCHAR(200), created_at DATETIME, KEY by_customer (customer));
SET SESSION max_recursive_iterations = $ROWS;
INSERT INTO bench.orders WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < $ROWS)
  SELECT n, CONCAT('c', n % 5000), ELT(1 + n % 3, 'new', 'paid', 'shipped'), n / 7,
    REPEAT(SUBSTRING(MD5(n), 1, 8), 1 + n % 10), NOW() - INTERVAL n MINUTE FROM seq;"

cd "$REPO"
build_backproof "$WORK/backproof"
mkdir -p "$WORK/store"
cat >"$WORK/bp.yaml" <<EOC
destinations:
  local: {type: local, path: $WORK/store}
targets:
  bench:
    engine: mariadb
    dsn: \${BENCH_DSN}
    destinations: [local]
EOC
export BENCH_DSN=${DSN%/}/bench

# timed NAME CMD...: wall seconds and peak RSS (MiB) of CMD.
declare -A SECS RSS
timed() {
  local name=$1; shift
  sync
  /usr/bin/time -f '%e %M' -o "$WORK/time" "$@" >/dev/null 2>"$WORK/$name.err" || { cat "$WORK/$name.err" >&2; die "$name failed"; }
  read -r SECS[$name] kb <"$WORK/time"
  RSS[$name]=$(awk -v k="$kb" 'BEGIN { printf "%.0f", k / 1024 }')
}
wait_quiet
timed D1 "$WORK/backproof" backup -c "$WORK/bp.yaml"
timed D0 bash -c 'set -o pipefail; mariadb-dump --single-transaction -h "$0" -P "$1" -u root bench | zstd -q -3 >"$2"' "$HOST" "$PORT" "$WORK/mariadb-dump.sql.zst"
timed R1 "$WORK/backproof" restore bench -c "$WORK/bp.yaml" --to "${DSN%/}/bench_r1"
timed R0 bash -c 'set -o pipefail; zstd -dc "$0" | mariadb -h "$1" -P "$2" -u root bench_r0' "$WORK/mariadb-dump.sql.zst" "$HOST" "$PORT"
client -e "DROP DATABASE bench; DROP DATABASE bench_r1; DROP DATABASE bench_r0"

art=$(find "$WORK/store" -name 'dump.sql.zst')
echo "machine ${M_BUSY_BEFORE:-?}% busy before the run; $ROWS rows"
echo
echo "| step | seconds | peak RSS MiB | vs the tool |"
echo "|---|---:|---:|---:|"
echo "| backproof backup ($(mib "$(stat -c %s "$art")") MiB) | ${SECS[D1]} | ${RSS[D1]} | $(ratio "${SECS[D1]}" "${SECS[D0]}") |"
echo "| mariadb-dump --single-transaction \| zstd ($(mib "$(stat -c %s "$WORK/mariadb-dump.sql.zst")") MiB) | ${SECS[D0]} | ${RSS[D0]} | |"
echo "| backproof restore --to | ${SECS[R1]} | ${RSS[R1]} | $(ratio "${SECS[R1]}" "${SECS[R0]}") |"
echo "| zstd -dc \| mariadb | ${SECS[R0]} | ${RSS[R0]} | |"
