#!/usr/bin/env bash
# Restore benchmark: `backproof restore --to` next to pg_restore of the same
# backup by hand.
#
#   bench/restore.sh                     scales 10 and 50, 3 rounds
#   SCALES=20 ROUNDS=5 bench/restore.sh
#
# For each pgbench scale it creates a database (`pgbench -i -s SCALE`), backs
# it up once with `backproof backup` to a local destination (untimed), drops
# it, then runs ROUNDS rounds of these variants, each into a new empty
# database, each timed with GNU time (wall seconds, peak RSS); the order
# rotates from round to round:
#   B  backproof restore TARGET --to DSN --json: list, size check, download +
#      zstd-decompress + SHA-256 into a spool file, emptiness check,
#      pg_restore --single-transaction reading the spool.
#   Z  by hand from the stored artifact: zstd -dc ARTIFACT | pg_restore
#      --single-transaction --no-owner --no-privileges.
#   R  raw pg_restore of the already decompressed dump file (same flags):
#      the floor, with decompression and checking done beforehand, untimed.
# Throughput is the decompressed dump's size over the wall time.
# It prints a markdown report on stdout and saves it, with the raw
# measurements, under bench-results/.
#
# Servers: scripts/testenv.sh (PostgreSQL 15 on 127.0.0.1) in its own state
# dir BACKPROOF_TESTENV_DIR (default /tmp/bp-bench), started if needed and
# then stopped at exit unless KEEP_TESTENV=1. It waits (up to QUIET_WAIT s)
# for an idle machine before each measurement.
# Environment: SCALES ("10 50"), ROUNDS (3), BACKPROOF (prebuilt binary;
# default: build ./cmd/backproof), RESULTS_DIR (bench-results/), BENCH_TMPDIR.
set -euo pipefail
export LC_ALL=C

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCALES=${SCALES:-"10 50"}
ROUNDS=${ROUNDS:-3}
VARIANTS=(B Z R)
RESULTS_DIR=${RESULTS_DIR:-$REPO/bench-results}
export BACKPROOF_TESTENV_DIR=${BACKPROOF_TESTENV_DIR:-/tmp/bp-bench}

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, not '$ROUNDS'"
for s in $SCALES; do [[ $s =~ ^[1-9][0-9]*$ ]] || die "bad scale '$s' in SCALES"; done
[[ -n ${SCALES// /} ]] || die "SCALES is empty"
[[ -x /usr/bin/time ]] || die "/usr/bin/time (GNU time) is missing: run scripts/testenv.sh up"
for c in jq zstd; do command -v "$c" >/dev/null || die "$c is missing"; done

WORK='' STARTED_TESTENV='' CREATED_DBS=() PG_BIN=''
RUN_ID=$$
TARGET=bench-$RUN_ID

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  drop_dbs "${CREATED_DBS[@]}"
  [[ -z $WORK ]] || rm -rf "$WORK"
  testenv_down
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

testenv_up
pg_env
export PATH=$PG_BIN:$PATH

WORK=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/bp-bench-restore.XXXXXX")
DEST=$WORK/dest LOGS=$WORK/logs
mkdir -p "$DEST" "$LOGS"
RAW=$WORK/raw.tsv
printf 'scale\tvariant\tround\twall_s\trss_kib\tbusy_before_pct\n' >"$RAW"

if [[ -n ${BACKPROOF:-} ]]; then
  [[ -x $BACKPROOF ]] || die "BACKPROOF=$BACKPROOF is not executable"
  BP=$BACKPROOF
else
  BP=$WORK/backproof
  build_backproof "$BP"
fi

export BENCH_PG_DSN=''
CFG=$WORK/backproof.yaml
(umask 077 && cat >"$CFG" <<EOF
destinations:
  local: {type: local, path: $DEST}
targets:
  $TARGET:
    engine: postgres
    dsn: \${BENCH_PG_DSN}
    destinations: [local]
EOF
)

dsn_of() { echo "postgres://$PGUSER:$PGPASSWORD@$PGHOST:$PGPORT/$1?sslmode=disable"; }
new_db() {
  psql -XAtq -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE \"$1\"" >/dev/null
  CREATED_DBS+=("$1")
}
drop_db() { psql -XAtq -d postgres -c "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" >/dev/null; }

# run_variant SCALE VARIANT ROUND
run_variant() {
  local scale=$1 v=$2 round=$3 db=bpbench_into_$RUN_ID out
  new_db "$db"
  sync
  wait_quiet
  out=$LOGS/$scale-$v-$round.log
  # shellcheck disable=SC2016 # $1 and $2 belong to the inner shell
  case $v in
    B) /usr/bin/time -f '%e %M' -o "$WORK/time" "$BP" restore -c "$CFG" "$TARGET" --to "$(dsn_of "$db")" --json >"$out" 2>&1 ;;
    Z) /usr/bin/time -f '%e %M' -o "$WORK/time" bash -c 'zstd -qdc "$1" | pg_restore --single-transaction --no-owner --no-privileges -d "$2"' _ "$ARTIFACT" "$db" >"$out" 2>&1 ;;
    R) /usr/bin/time -f '%e %M' -o "$WORK/time" pg_restore --single-transaction --no-owner --no-privileges -d "$db" "$WORK/dump.pgdump" >"$out" 2>&1 ;;
  esac || { tail -n 20 "$out" >&2; die "variant $v failed"; }
  local n
  n=$(psql -XAtq -d "$db" -c 'SELECT count(*) FROM pgbench_accounts')
  ((n == scale * 100000)) || die "variant $v restored $n accounts, want $((scale * 100000))"
  read -r wall rss <"$WORK/time"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$scale" "$v" "$round" "$wall" "$rss" "$M_BUSY_BEFORE" >>"$RAW"
  say "  scale $scale round $round $v: ${wall}s, $(mib $((rss * 1024))) MiB peak RSS"
  drop_db "$db"
}

declare -A DUMP_SIZE ART_SIZE
for scale in $SCALES; do
  src=bpbench_src_s${scale}_$RUN_ID
  say "scale $scale: creating database $src (pgbench -i -s $scale)"
  new_db "$src"
  pgbench -i -q -s "$scale" "$src" >"$LOGS/pgbench-$scale.log" 2>&1 ||
    { tail -n 20 "$LOGS/pgbench-$scale.log" >&2; die "pgbench -i failed"; }
  BENCH_PG_DSN=$(dsn_of "$src")
  say "scale $scale: backing up (untimed)"
  rm -rf "${DEST:?}"/*
  "$BP" backup -c "$CFG" --json >"$LOGS/backup-$scale.json" 2>"$LOGS/backup-$scale.log" ||
    { tail -n 20 "$LOGS/backup-$scale.log" >&2; die "backproof backup failed"; }
  drop_db "$src"
  ARTIFACT=$(find "$DEST" -name '*.zst' -type f -print | head -n 1)
  [[ -n $ARTIFACT ]] || die "no artifact in $DEST after the backup"
  zstd -qdcf "$ARTIFACT" >"$WORK/dump.pgdump"
  ART_SIZE[$scale]=$(stat -c %s "$ARTIFACT")
  DUMP_SIZE[$scale]=$(stat -c %s "$WORK/dump.pgdump")
  for ((round = 1; round <= ROUNDS; round++)); do
    for ((i = 0; i < ${#VARIANTS[@]}; i++)); do
      run_variant "$scale" "${VARIANTS[(i + round - 1) % ${#VARIANTS[@]}]}" "$round"
    done
  done
done

# median SCALE VARIANT COLUMN
median() {
  awk -F'\t' -v s="$1" -v v="$2" -v k="$3" 'NR > 1 && $1 == s && $2 == v { print $k }' "$RAW" | sort -g |
    awk '{ x[NR] = $1 } END { if (NR % 2) print x[(NR + 1) / 2]; else print (x[NR / 2] + x[NR / 2 + 1]) / 2 }'
}

report() {
  echo "## Restore benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "Machine: $(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(uname -r); $(pg_restore --version); backproof $(cd "$REPO" && git rev-parse --short HEAD). Median of $ROUNDS rounds, wall seconds; throughput = decompressed dump / wall."
  echo
  echo '| scale | dump | stored | B backproof restore | Z zstd -dc \| pg_restore | R pg_restore FILE | B/Z | B/R | B throughput | B peak RSS |'
  echo '|---|---|---|---|---|---|---|---|---|---|'
  for scale in $SCALES; do
    local b z r
    b=$(median "$scale" B 4) z=$(median "$scale" Z 4) r=$(median "$scale" R 4)
    printf '| %s | %s MiB | %s MiB | %s s | %s s | %s s | %s | %s | %s MiB/s | %s MiB |\n' "$scale" \
      "$(mib "${DUMP_SIZE[$scale]}")" "$(mib "${ART_SIZE[$scale]}")" "$b" "$z" "$r" "$(ratio "$b" "$z")" "$(ratio "$b" "$r")" \
      "$(awk -v d="${DUMP_SIZE[$scale]}" -v t="$b" 'BEGIN { printf "%.0f", d / 1048576 / t }')" \
      "$(mib $(($(median "$scale" B 5) * 1024)))"
  done
}

mkdir -p "$RESULTS_DIR"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
report | tee "$RESULTS_DIR/restore-$stamp.md"
cp "$RAW" "$RESULTS_DIR/restore-$stamp.tsv"
