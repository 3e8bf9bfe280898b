#!/usr/bin/env bash
# shellcheck disable=SC2016 # single quotes on purpose: markdown
# Encryption overhead: `backproof backup` of the same database to local +
# MinIO, plaintext next to encrypted to an age recipient.
#
#   bench/encrypt.sh                       pgbench scale 50 and 2M random rows, 5 rounds
#   DATASETS="random" ROWS=4000000 ROUNDS=7 bench/encrypt.sh
#
# Datasets (DATASETS, default "pgbench random"):
#   pgbench  `pgbench -i -s SCALE` (SCALE, default 50): compresses ~200:1, so
#            encryption has little to do; the common case of regular data.
#   random   one table of ROWS rows (default 2000000) of 64 random bytes
#            (bytea): compresses ~1.5:1, the worst case for encryption, which
#            then handles nearly as many bytes as pg_dump writes.
# Variants, each `backproof backup -c CFG TARGET --json` to local + MinIO:
#   P  plaintext (dump.pgdump.zst)
#   E  encrypted to one recipient (dump.pgdump.zst.age)
# Each round runs both, P first in odd rounds and E first in even ones, after
# `sync` and a wait for an idle machine (lib.sh); each run is timed with GNU
# time (wall, peak RSS, user+sys CPU of the process tree). Every run must
# commit on both destinations; E's local artifact must begin with the age
# header, P's with the zstd magic. Report on stdout and in bench-results/.
#
# Servers: scripts/testenv.sh in BACKPROOF_TESTENV_DIR (default /tmp/bp-bench),
# started if needed and then stopped at exit (KEEP_TESTENV=1 keeps it). Only
# 127.0.0.1 is contacted. Databases, the bucket and files are removed at exit.
# Environment: DATASETS, SCALE, ROWS, ROUNDS (5), BACKPROOF (prebuilt binary),
# RESULTS_DIR, BENCH_TMPDIR, QUIET_WAIT.
set -euo pipefail
export LC_ALL=C

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATASETS=${DATASETS:-"pgbench random"}
SCALE=${SCALE:-50}
ROWS=${ROWS:-2000000}
ROUNDS=${ROUNDS:-5}
RESULTS_DIR=${RESULTS_DIR:-$REPO/bench-results}
export BACKPROOF_TESTENV_DIR=${BACKPROOF_TESTENV_DIR:-/tmp/bp-bench}

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, not '$ROUNDS'"
[[ $SCALE =~ ^[1-9][0-9]*$ && $ROWS =~ ^[1-9][0-9]*$ ]] || die "SCALE and ROWS must be positive integers"
for d in $DATASETS; do [[ $d == pgbench || $d == random ]] || die "unknown dataset '$d' (pgbench, random)"; done
[[ -x /usr/bin/time ]] || die "/usr/bin/time (GNU time) is missing: run scripts/testenv.sh up"
for c in jq curl; do command -v "$c" >/dev/null || die "$c is missing"; done

WORK='' STARTED_TESTENV='' BUCKET='' CREATED_DBS=() PG_BIN='' S3_ENDPOINT=''

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  drop_dbs "${CREATED_DBS[@]}"
  if [[ -n $BUCKET ]]; then
    s3curl -X DELETE -H 'x-minio-force-delete: true' "$S3_ENDPOINT/$BUCKET" >/dev/null 2>&1 ||
      say "could not delete bucket $BUCKET"
  fi
  [[ -z $WORK ]] || rm -rf "$WORK"
  testenv_down
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

testenv_up
S3_ENDPOINT=$BACKPROOF_TEST_S3_ENDPOINT

pg_env
[[ $S3_ENDPOINT =~ ^http://(127\.0\.0\.1|localhost|\[::1\]):[0-9]+$ ]] ||
  die "S3 endpoint '$S3_ENDPOINT' is not loopback: refusing"
export NO_PROXY='*' no_proxy='*'

# s3curl ARGS...: a SigV4-signed curl; the credentials go through stdin, not argv.
s3curl() {
  printf 'user = "%s:%s"\n' "$BACKPROOF_TEST_S3_ACCESS_KEY" "$BACKPROOF_TEST_S3_SECRET_KEY" |
    curl -fsS --noproxy '*' -m 60 --aws-sigv4 'aws:amz:us-east-1:s3' -K - "$@"
}

WORK=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/bp-bench-enc.XXXXXX")
DEST=$WORK/dest LOGS=$WORK/logs RAW=$WORK/raw.tsv
mkdir -p "$DEST" "$LOGS"
printf 'dataset\tvariant\tround\twall_s\trss_kib\tcpu_s\tsize_bytes\tbusy_before_pct\n' >"$RAW"

if [[ -n ${BACKPROOF:-} ]]; then
  [[ -x $BACKPROOF ]] || die "BACKPROOF=$BACKPROOF is not executable"
  BP=$BACKPROOF
else
  BP=$WORK/backproof
  build_backproof "$BP"
fi

BUCKET=bp-bench-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
s3curl -X PUT -o /dev/null "$S3_ENDPOINT/$BUCKET" || { BUCKET=''; die "cannot create bucket"; }

# The writer's config holds only the recipient, as on a database host.
RECIPIENT=$("$BP" keygen -o "$WORK/identity.key" 2>/dev/null)
export BENCH_PG_DSN='' BENCH_S3_ENDPOINT=$S3_ENDPOINT
export BENCH_S3_ACCESS_KEY=$BACKPROOF_TEST_S3_ACCESS_KEY BENCH_S3_SECRET_KEY=$BACKPROOF_TEST_S3_SECRET_KEY
write_config() { # FILE [ENCRYPTION YAML]
  (umask 077 && cat >"$1" <<EOF
$2
destinations:
  local: {type: local, path: $DEST}
  minio:
    type: s3
    bucket: $BUCKET
    prefix: bench
    endpoint: \${BENCH_S3_ENDPOINT}
    path_style: true
    access_key_id: \${BENCH_S3_ACCESS_KEY}
    secret_access_key: \${BENCH_S3_SECRET_KEY}
targets:
  db: {engine: postgres, dsn: "\${BENCH_PG_DSN}", destinations: [local, minio]}
EOF
  )
}
write_config "$WORK/P.yaml" ''
write_config "$WORK/E.yaml" "encryption: {recipients: [$RECIPIENT]}"

# run DATASET VARIANT ROUND: one timed backup, checked, appended to $RAW.
run() {
  local ds=$1 v=$2 round=$3 log=$LOGS/$1-$2-$3 tf=$WORK/time.out
  sync
  wait_quiet
  if ! /usr/bin/time -o "$tf" -f '%e %M %U %S' "$BP" backup -c "$WORK/$v.yaml" db --json >"$log.json" 2>"$log.err"; then
    tail -n 20 "$log.err" >&2
    die "variant $v ($ds, round $round) failed"
  fi
  local committed size art magic wall rss u s
  committed=$(jq '[.backups[0].destinations[] | select(.committed)] | length' "$log.json")
  [[ $committed == 2 ]] || die "variant $v: $committed of 2 destinations committed"
  size=$(jq '.backups[0].size' "$log.json")
  art=$(find "$DEST" -path '*/.tmp' -prune -o -name 'dump.pgdump.zst*' -type f -print | head -n 1)
  [[ $(stat -c %s "$art") == "$size" ]] || die "variant $v: local artifact size differs from the reported $size"
  magic=$(head -c 21 "$art" | od -An -c | tr -d ' \n')
  case $v in
    P) [[ $art == *.zst && $magic == '('* ]] || die "P: $art is not a zstd frame" ;;
    E) [[ $art == *.zst.age && $magic == age-encryption.org/v1 ]] || die "E: $art does not begin with the age header" ;;
  esac
  read -r wall rss u s < <(tail -n 1 "$tf")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$ds" "$v" "$round" "$wall" "$rss" \
    "$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')" "$size" "$M_BUSY_BEFORE" >>"$RAW"
  say "  $ds round $round $v: ${wall}s, $((rss / 1024)) MiB, $size bytes"
  rm -rf "${DEST:?}"/* "$DEST"/.tmp
}

export PATH=$PG_BIN:$PATH
declare -A DB_SIZE
for ds in $DATASETS; do
  db=bpbench_enc_${ds}_$$
  psql -XAtq -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE \"$db\"" >/dev/null
  CREATED_DBS+=("$db")
  say "$ds: filling $db"
  case $ds in
    pgbench) pgbench -i -q -s "$SCALE" "$db" >"$LOGS/pgbench.log" 2>&1 || die "pgbench -i failed" ;;
    random) psql -XAtq -v ON_ERROR_STOP=1 -d "$db" -c "CREATE TABLE noise AS SELECT i AS id,
      decode(md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text), 'hex') AS data
      FROM generate_series(1, $ROWS) i" >/dev/null ;;
  esac
  psql -XAtq -v ON_ERROR_STOP=1 -d "$db" -c 'VACUUM ANALYZE' >/dev/null
  DB_SIZE[$ds]=$(psql -XAtq -d "$db" -c "SELECT pg_database_size(current_database())")
  BENCH_PG_DSN="postgres://$PGUSER:$PGPASSWORD@$PGHOST:$PGPORT/$db${DSN_PARAMS:-?sslmode=disable}"
  pg_dump -Fc -Z0 "$db" >/dev/null # untimed: the database in the page cache
  for ((round = 1; round <= ROUNDS; round++)); do
    if ((round % 2)); then order="P E"; else order="E P"; fi
    for v in $order; do run "$ds" "$v" "$round"; done
  done
  psql -XAtq -d postgres -c "DROP DATABASE \"$db\" WITH (FORCE)" >/dev/null
done

# stat_of DATASET VARIANT COLUMN median|min|max|list (4 wall, 5 rss, 6 cpu, 7 size)
stat_of() {
  awk -F'\t' -v d="$1" -v v="$2" -v c="$3" 'NR > 1 && $1 == d && $2 == v { print $c }' "$RAW" | sort -g |
    awk -v f="$4" '{ x[NR] = $1 }
      END {
        if (f == "max") print x[NR]
        else if (f == "min") print x[1]
        else if (f == "list") { for (i = 1; i <= NR; i++) printf "%s%s", x[i], (i < NR ? " " : "\n") }
        else if (NR % 2) print x[(NR + 1) / 2]
        else print (x[NR / 2] + x[NR / 2 + 1]) / 2
      }'
}

commit=$(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
stamp=$(date -u +%Y%m%dT%H%M%SZ)
report() {
  echo "## Encryption overhead, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "Machine: $(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(uname -r). backproof $commit; $(pg_dump --version); MinIO on 127.0.0.1."
  echo "Method: \`backproof backup\` to local + MinIO, plaintext (P) and encrypted to one age recipient (E), ${ROUNDS} rounds alternating which runs first; median wall; CPU = user+sys of the process tree (backproof + pg_dump); peak RSS = max over rounds."
  echo
  echo "| dataset | DB (MiB) | artifact P / E (MiB) | wall P (s) | wall E (s) | E / P wall | E / P fastest rounds | CPU P / E (s) | E / P CPU | peak RSS P / E (MiB) |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  local ds wp we
  for ds in $DATASETS; do
    wp=$(stat_of "$ds" P 4 median) we=$(stat_of "$ds" E 4 median)
    printf '| %s | %s | %s / %s | %s | %s | %s | %s | %s / %s | %s | %s / %s |\n' "$ds" "$(mib "${DB_SIZE[$ds]}")" \
      "$(mib "$(stat_of "$ds" P 7 median)")" "$(mib "$(stat_of "$ds" E 7 median)")" "$wp" "$we" "$(ratio "$we" "$wp")" \
      "$(ratio "$(stat_of "$ds" E 4 min)" "$(stat_of "$ds" P 4 min)")" \
      "$(stat_of "$ds" P 6 median)" "$(stat_of "$ds" E 6 median)" \
      "$(ratio "$(stat_of "$ds" E 6 median)" "$(stat_of "$ds" P 6 median)")" \
      "$(awk -v k="$(stat_of "$ds" P 5 max)" 'BEGIN { printf "%.0f", k / 1024 }')" \
      "$(awk -v k="$(stat_of "$ds" E 5 max)" 'BEGIN { printf "%.0f", k / 1024 }')"
  done
  echo
  for ds in $DATASETS; do
    echo "- $ds, all rounds (s): P $(stat_of "$ds" P 4 list); E $(stat_of "$ds" E 4 list)"
  done
}

mkdir -p "$RESULTS_DIR"
report | tee "$RESULTS_DIR/encrypt-$stamp.md"
cp "$RAW" "$RESULTS_DIR/encrypt-$stamp.tsv"
say "saved $RESULTS_DIR/encrypt-$stamp.md and .tsv"
