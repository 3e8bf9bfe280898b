#!/usr/bin/env bash
# shellcheck disable=SC2016 # single quotes on purpose: bash -c scripts, markdown
# Backup benchmark: how long `backproof backup` takes, and how much memory it
# needs, next to the pipelines people write by hand.
#
#   bench/backup.sh                      scales 10 and 50, 3 rounds each
#   SCALES="10" ROUNDS=5 bench/backup.sh
#
# For each pgbench scale it creates a database (`pgbench -i -s SCALE`, then
# VACUUM ANALYZE) and runs ROUNDS rounds of these variants, each timed with
# GNU time (wall seconds, peak RSS, CPU seconds); the order rotates from round
# to round and `sync` runs (untimed) between measurements:
#   F  pg_dump -Fc -Z0 DB > /dev/null           the floor: pg_dump alone
#   A  pg_dump -Fc DB | zstd -q > FILE          the common pipeline (pg_dump's
#                                               default zlib, then zstd)
#   B  pg_dump -Fc -Z0 DB | zstd -q -3 > FILE   the fair pipeline
#   1  backproof backup, one local destination
#   2  backproof backup, local + S3 (MinIO) destinations
# A and B run as `bash -c 'set -o pipefail; ...'`, so their times cover the
# whole pipeline. It prints a markdown report on stdout (progress goes to
# stderr) and saves it, with the raw measurements, under bench-results/.
#
# Servers: scripts/testenv.sh (PostgreSQL 15 + MinIO on 127.0.0.1), in its own
# state dir BACKPROOF_TESTENV_DIR (default /tmp/bp-bench). It is started if
# needed and, if this script started it, stopped at exit (KEEP_TESTENV=1 keeps
# it). Only 127.0.0.1 / ::1 / localhost are ever contacted.
#
# Before each run it waits (up to QUIET_WAIT seconds, default 60) for the
# machine to be idle (<15% CPU): tests or builds running next to the benchmark
# skew its timings, and each run records how busy the whole machine was.
#
# Environment: SCALES (default "10 50"), ROUNDS (3), BACKPROOF (a prebuilt
# binary; default: build ./cmd/backproof), RESULTS_DIR (default
# bench-results/), BENCH_TMPDIR (parent of the scratch dir; default $TMPDIR or
# /tmp). Everything it creates (databases, bucket, files) is removed at exit.
#
# Caveats, read before quoting numbers:
# - Peak RSS is GNU time's %M: the largest single process of the measured
#   tree. For backproof that is max(backproof, its pg_dump child); row F shows
#   what pg_dump alone needs.
# - backproof fsyncs its local file (and MinIO syncs its own writes); the
#   hand-written pipelines A and B do not fsync their output.
# - backproof also counts every table's rows in the dump's snapshot while
#   pg_dump runs; that work is part of its measured time.
# - MinIO and PostgreSQL run on the same machine and share its CPUs.
set -euo pipefail
export LC_ALL=C

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCALES=${SCALES:-"10 50"}
ROUNDS=${ROUNDS:-3}
RESULTS_DIR=${RESULTS_DIR:-$REPO/bench-results}
export BACKPROOF_TESTENV_DIR=${BACKPROOF_TESTENV_DIR:-/tmp/bp-bench}

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, not '$ROUNDS'"
for s in $SCALES; do [[ $s =~ ^[1-9][0-9]*$ ]] || die "bad scale '$s' in SCALES"; done
[[ -n ${SCALES// /} ]] || die "SCALES is empty"
[[ -x /usr/bin/time ]] || die "/usr/bin/time (GNU time) is missing: run scripts/testenv.sh up"
for c in jq curl zstd; do command -v "$c" >/dev/null || die "$c is missing"; done

# ---------------------------------------------------------------- cleanup

WORK='' STARTED_TESTENV='' BUCKET='' CREATED_DBS=()
PG_BIN='' S3_ENDPOINT=''

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  drop_dbs "${CREATED_DBS[@]}"
  if [[ -n $BUCKET ]]; then
    # MinIO extension: delete the bucket with everything in it.
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

# ---------------------------------------------------------------- servers

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

# ---------------------------------------------------------------- setup

WORK=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/bp-bench-run.XXXXXX")
DEST=$WORK/dest   # backproof's local destination
OUT=$WORK/out     # the pipelines' dump files
LOGS=$WORK/logs
mkdir -p "$DEST" "$OUT" "$LOGS"
RAW=$WORK/raw.tsv # one line per measurement
printf 'scale\tvariant\tround\twall_s\trss_kib\tcpu_s\tsize_bytes\tmachine_cpu_s\tbusy_before_pct\n' >"$RAW"

if [[ -n ${BACKPROOF:-} ]]; then
  [[ -x $BACKPROOF ]] || die "BACKPROOF=$BACKPROOF is not executable"
  BP=$BACKPROOF
else
  BP=$WORK/backproof
  build_backproof "$BP"
fi

BUCKET=bp-bench-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
s3curl -X PUT -o /dev/null "$S3_ENDPOINT/$BUCKET" || { BUCKET=''; die "cannot create bucket"; }

# The config reads the DSN and keys from the environment (${VAR} expansion).
export BENCH_PG_DSN='' BENCH_S3_ENDPOINT=$S3_ENDPOINT
export BENCH_S3_ACCESS_KEY=$BACKPROOF_TEST_S3_ACCESS_KEY BENCH_S3_SECRET_KEY=$BACKPROOF_TEST_S3_SECRET_KEY
CONFIG=$WORK/backproof.yaml
(umask 077 && cat >"$CONFIG" <<EOF
log:
  level: info
  format: text
destinations:
  local:
    type: local
    path: $DEST
  minio:
    type: s3
    bucket: $BUCKET
    prefix: bench
    region: us-east-1
    endpoint: \${BENCH_S3_ENDPOINT}
    path_style: true
    access_key_id: \${BENCH_S3_ACCESS_KEY}
    secret_access_key: \${BENCH_S3_SECRET_KEY}
targets:
  one-dest:
    engine: postgres
    dsn: \${BENCH_PG_DSN}
    destinations: [local]
  two-dest:
    engine: postgres
    dsn: \${BENCH_PG_DSN}
    destinations: [local, minio]
EOF
)

# ---------------------------------------------------------------- measuring

# measure SCALE VARIANT ROUND CMD...: run CMD under GNU time, append to $RAW.
# Sets M_WALL M_RSS M_CPU M_MACHINE. The command's output goes to a log; a failure is fatal.
measure() {
  local scale=$1 variant=$2 round=$3; shift 3
  local log=$LOGS/$scale-$variant-$round.log tf=$WORK/time.out b0 b1
  sync # untimed: start every measurement without the last one's dirty pages
  wait_quiet
  b0=$(busy_ticks)
  if ! /usr/bin/time -o "$tf" -f '%e %M %U %S' "$@" >"$log.out" 2>"$log"; then
    say "variant $variant (scale $scale, round $round) failed:"
    tail -n 20 "$log" "$log.out" >&2
    cat "$tf" >&2 2>/dev/null || true
    exit 1
  fi
  b1=$(busy_ticks)
  local u s
  read -r M_WALL M_RSS u s < <(tail -n 1 "$tf")
  M_CPU=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')
  M_MACHINE=$(awk -v t="$((b1 - b0))" -v hz="$HZ" 'BEGIN { printf "%.2f", t / hz }')
}

record() { # SCALE VARIANT ROUND SIZE
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$M_WALL" "$M_RSS" "$M_CPU" "$4" "$M_MACHINE" "$M_BUSY_BEFORE" >>"$RAW"
  say "  scale $1 round $3 variant $2: ${M_WALL}s, $((M_RSS / 1024)) MiB, cpu ${M_CPU}s (machine ${M_MACHINE}s), $4 bytes"
}

# run_backproof SCALE VARIANT ROUND TARGET NDEST
run_backproof() {
  local scale=$1 variant=$2 round=$3 target=$4 ndest=$5 json
  measure "$scale" "$variant" "$round" "$BP" backup -c "$CONFIG" "$target" --json
  json=$LOGS/$scale-$variant-$round.log.out
  # Trust nothing: every destination committed, and the local file is there.
  local committed size local_size
  committed=$(jq -r '[.backups[0].destinations[] | select(.committed)] | length' "$json")
  [[ $committed == "$ndest" ]] || { cat "$json" >&2; die "backproof: $committed of $ndest destinations committed"; }
  size=$(jq -r '.backups[0].size' "$json")
  local_size=$(find "$DEST" -path '*/.tmp' -prune -o -name '*.zst' -type f -printf '%s\n' | head -n 1)
  [[ $size -gt 0 && $local_size == "$size" ]] ||
    die "backproof reported $size bytes, local artifact has '${local_size:-none}'"
  if [[ $round == 1 && $variant == 1 ]]; then # once per scale, untimed
    local f
    f=$(find "$DEST" -path '*/.tmp' -prune -o -name '*.zst' -type f -print | head -n 1)
    local magic
    magic=$(zstd -dc "$f" 2>/dev/null | head -c 5 || true)
    [[ $magic == PGDMP ]] || die "backproof's artifact is not a zstd'd custom-format archive"
  fi
  record "$scale" "$variant" "$round" "$size"
  rm -rf "${DEST:?}"/* "$DEST"/.tmp
}

run_variant() { # SCALE DB VARIANT ROUND
  local scale=$1 db=$2 v=$3 round=$4 f=$OUT/dump.$3
  case $v in
    F)
      measure "$scale" F "$round" bash -c 'set -o pipefail; pg_dump -Fc -Z0 "$1" > /dev/null' _ "$db"
      record "$scale" F "$round" 0 ;;
    A)
      measure "$scale" A "$round" bash -c 'set -o pipefail; pg_dump -Fc "$1" | zstd -q > "$2"' _ "$db" "$f"
      record "$scale" A "$round" "$(stat -c %s "$f")"
      rm -f "$f" ;;
    B)
      measure "$scale" B "$round" bash -c 'set -o pipefail; pg_dump -Fc -Z0 "$1" | zstd -q -3 > "$2"' _ "$db" "$f"
      record "$scale" B "$round" "$(stat -c %s "$f")"
      rm -f "$f" ;;
    1) run_backproof "$scale" 1 "$round" one-dest 1 ;;
    2) run_backproof "$scale" 2 "$round" two-dest 2 ;;
  esac
}

export PATH=$PG_BIN:$PATH # pg_dump, pgbench, psql of the server's major
VARIANTS=(F A B 1 2)
declare -A DB_SIZE

for scale in $SCALES; do
  db=bpbench_s${scale}_$$
  say "scale $scale: creating database $db (pgbench -i -s $scale)"
  psql -XAtq -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE \"$db\"" >/dev/null
  CREATED_DBS+=("$db")
  pgbench -i -q -s "$scale" "$db" >"$LOGS/pgbench-$scale.log" 2>&1 ||
    { tail -n 20 "$LOGS/pgbench-$scale.log" >&2; die "pgbench -i failed"; }
  psql -XAtq -v ON_ERROR_STOP=1 -d "$db" -c 'VACUUM ANALYZE' >/dev/null
  DB_SIZE[$scale]=$(psql -XAtq -d "$db" -c "SELECT pg_database_size(current_database())")
  BENCH_PG_DSN="postgres://$PGUSER:$PGPASSWORD@$PGHOST:$PGPORT/$db${DSN_PARAMS:-?sslmode=disable}"
  pg_dump -Fc -Z0 "$db" >/dev/null # untimed warm-up: the database in the page cache

  for ((round = 1; round <= ROUNDS; round++)); do
    # Rotate the order so no variant always runs first (or right after another).
    n=${#VARIANTS[@]}
    for ((i = 0; i < n; i++)); do
      run_variant "$scale" "$db" "${VARIANTS[(i + round - 1) % n]}" "$round"
    done
  done

  psql -XAtq -d postgres -c "DROP DATABASE \"$db\" WITH (FORCE)" >/dev/null
done

# ---------------------------------------------------------------- report

# stat_of SCALE VARIANT COLUMN FUNC: median|min|max|list of a raw column
# (4 wall, 5 rss, 6 cpu, 7 size, 8 machine cpu)
stat_of() {
  awk -F'\t' -v s="$1" -v v="$2" -v c="$3" 'NR > 1 && $1 == s && $2 == v { print $c }' "$RAW" | sort -g |
    awk -v f="$4" '{ x[NR] = $1 }
      END {
        if (NR == 0) { print "-"; exit }
        if (f == "max") print x[NR]
        else if (f == "min") print x[1]
        else if (f == "list") { for (i = 1; i <= NR; i++) printf "%s%s", x[i], (i < NR ? " " : "\n") }
        else if (NR % 2) print x[(NR + 1) / 2]
        else print (x[NR / 2] + x[NR / 2 + 1]) / 2
      }'
}

declare -A NAME=(
  [F]='F: `pg_dump -Fc -Z0 > /dev/null` (floor)'
  [A]='A: `pg_dump -Fc \| zstd -q`'
  [B]='B: `pg_dump -Fc -Z0 \| zstd -q -3`'
  [1]='backproof, 1 dest (local)'
  [2]='backproof, 2 dests (local + MinIO)'
)

mem_kib=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
commit=$(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=''
if [[ -n $(cd "$REPO" && git status --porcelain 2>/dev/null) ]]; then dirty=', uncommitted changes in tree'; fi
stamp=$(date -u +%Y%m%dT%H%M%SZ)

report() {
  echo "## Backup benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "Machine: $(nproc) CPUs ($cpu_model), $(awk -v k="$mem_kib" 'BEGIN { printf "%.1f GiB", k / 1048576 }') RAM, $(uname -r)."
  echo "Software: backproof $commit$dirty ($("$BP" version | head -n 1)); $(pg_dump --version); server $(psql -XAtq -d postgres -c 'SHOW server_version'); $(zstd --version | sed 's/^\*\*\* //; s/ \*\*\*$//; s/, by.*//'); MinIO on 127.0.0.1."
  echo "Method: ${ROUNDS} rounds per scale, variants in rotating order, \`sync\` and a wait for an idle machine (<15% CPU, up to ${QUIET_WAIT}s) before each run; median wall time; \"min vs A\" compares the fastest rounds; peak RSS = max over rounds of GNU time %M (largest process of the tree); CPU = user+sys of the measured process tree (median); machine CPU = busy CPU seconds of the whole machine during the run (median; includes the PostgreSQL backend, MinIO, and anything else running)."
  echo
  local s v wall wa wb
  for s in $SCALES; do
    wa=$(stat_of "$s" A 4 median) wb=$(stat_of "$s" B 4 median)
    echo "### pgbench scale $s — database $(mib "${DB_SIZE[$s]}") MiB"
    echo
    echo "| variant | dump size (MiB) | median wall (s) | all rounds (s) | vs A | vs B | min vs A | peak RSS (MiB) | CPU (s) | machine CPU (s) |"
    echo "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|"
    for v in "${VARIANTS[@]}"; do
      wall=$(stat_of "$s" "$v" 4 median)
      local size='-'
      [[ $v == F ]] || size=$(awk -v b="$(stat_of "$s" "$v" 7 median)" 'BEGIN { printf "%.2f", b / 1048576 }')
      printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "${NAME[$v]}" "$size" "$wall" \
        "$(stat_of "$s" "$v" 4 list)" "$(ratio "$wall" "$wa")" "$(ratio "$wall" "$wb")" \
        "$(ratio "$(stat_of "$s" "$v" 4 min)" "$(stat_of "$s" A 4 min)")" \
        "$(awk -v k="$(stat_of "$s" "$v" 5 max)" 'BEGIN { printf "%.0f", k / 1024 }')" \
        "$(stat_of "$s" "$v" 6 median)" "$(stat_of "$s" "$v" 8 median)"
    done
    echo
  done
  echo "### Summary (goal: 2 destinations ≤ 1.10× A, RSS flat across sizes)"
  echo
  echo "| scale | DB (MiB) | A (s) | B (s) | backproof 1 dest (s) | backproof 2 dests (s) | 2 dests vs A | 2 dests vs B | 2 dests vs A, fastest rounds | backproof RSS 1 / 2 dests (MiB) | pg_dump alone RSS (MiB) |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for s in $SCALES; do
    wa=$(stat_of "$s" A 4 median) wb=$(stat_of "$s" B 4 median)
    local w2; w2=$(stat_of "$s" 2 4 median)
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s |\n' "$s" "$(mib "${DB_SIZE[$s]}")" "$wa" "$wb" \
      "$(stat_of "$s" 1 4 median)" "$w2" "$(ratio "$w2" "$wa")" "$(ratio "$w2" "$wb")" \
      "$(ratio "$(stat_of "$s" 2 4 min)" "$(stat_of "$s" A 4 min)")" \
      "$(awk -v k="$(stat_of "$s" 1 5 max)" 'BEGIN { printf "%.0f", k / 1024 }')" \
      "$(awk -v k="$(stat_of "$s" 2 5 max)" 'BEGIN { printf "%.0f", k / 1024 }')" \
      "$(awk -v k="$(stat_of "$s" F 5 max)" 'BEGIN { printf "%.0f", k / 1024 }')"
  done
}

mkdir -p "$RESULTS_DIR"
report | tee "$RESULTS_DIR/backup-$stamp.md"
cp "$RAW" "$RESULTS_DIR/backup-$stamp.tsv"
say "saved $RESULTS_DIR/backup-$stamp.md and .tsv"
