#!/usr/bin/env bash
# shellcheck disable=SC2016 # single quotes on purpose: markdown
# Verify benchmark: time to verdict. How long `backproof verify` takes from
# the command to its answer, next to doing the same restore by hand.
#
#   bench/verify.sh                          scales 10 and 50, sandbox CPUs 1 and 2, 3 rounds
#   SCALES="50" CPUS="2" VARIANTS="V H" ROUNDS=5 bench/verify.sh
#
# For each pgbench scale it creates a database (`pgbench -i -s SCALE`, then
# VACUUM ANALYZE), backs it up once with `backproof backup` to a local
# destination (untimed), and then, for each sandbox CPU limit in CPUS, runs
# ROUNDS rounds of these variants, each timed with GNU time (wall seconds) and
# /proc/stat (busy CPU seconds of the whole machine); the order rotates from
# round to round and `sync` runs (untimed) between measurements:
#   V  backproof verify -c CFG TARGET --json: list, download + zstd-decompress
#      + SHA-256 into a spool file while the sandbox starts, pg_restore --jobs=N,
#      row counts of every table, schema objects, amcheck of every btree
#      index, one configured check query; the container is removed.
#   H  by hand, the way a person does it: `docker run -d --rm` of the same
#      image with the same --memory/--cpus, wait for the ready line twice in
#      `docker logs`, `zstd -dc ARTIFACT | pg_restore --single-transaction`
#      (one job, from the stream, the image's default server settings),
#      `docker rm -f -v` (the container and its data volume, as backproof
#      removes both).
#   S  H with backproof's server settings (fsync=off, synchronous_commit=off,
#      full_page_writes=off, wal_level=minimal, max_wal_size=4GB, checkpoint_timeout=1h,
#      autovacuum=off): what the settings alone buy.
#   T  S with backproof's restore method: the artifact decompressed to a file
#      while the container starts, then `pg_restore --jobs=N` from the file
#      (N as backproof picks it: 1 in a single transaction under 2 CPUs, else
#      min(8, ceil(CPUS))). backproof also writes the data offsets into its
#      spool, which pg_dump could not write to a pipe; T's workers read
#      through the file to find their data instead. V minus T is
#      backproof's own cost: its checks and its overhead.
# Two more by-hand variants take T apart:
#   F  S from the decompressed file (one job, --single-transaction): the spool alone.
#   N  F without --single-transaction (one job, every statement commits on its
#      own, as each --jobs worker does): the transaction mode alone.
# The by-hand variants also read one tiny table (pgbench_branches) after the
# restore, a sanity check that takes milliseconds. Every variant's time
# includes removing its container and volume. The by-hand variants record when
# the server was ready, when the restore started and ended; V's steps come
# from its JSON record.
# It prints a markdown report on stdout (progress goes to stderr) and saves
# it, with the raw measurements, under bench-results/.
#
# Servers: scripts/testenv.sh (PostgreSQL 15, MinIO, a Docker engine and the
# offline sandbox image backproof-sandbox/postgres:15, all on 127.0.0.1), in
# its own state dir BACKPROOF_TESTENV_DIR (default /tmp/bp-bench). It is
# started if needed and, if this script started it, stopped at exit
# (KEEP_TESTENV=1 keeps it). Only 127.0.0.1 is ever contacted; containers
# publish their port on 127.0.0.1 only.
#
# Before each run it waits (up to QUIET_WAIT seconds, default 60) for the
# machine to be idle (<15% CPU): tests or builds running next to the benchmark
# skew its timings, and each run records how busy the whole machine was.
#
# Environment: SCALES (default "10 50"), VARIANTS (default "V H S T F N"), CPUS
# (sandbox CPU limits, default "1 2"), MEMORY_MIB (sandbox memory limit,
# default 1024), ROUNDS (3), IMAGE (default: the testenv's postgres sandbox
# image), BACKPROOF (a prebuilt binary; default: build ./cmd/backproof),
# RESULTS_DIR (default bench-results/), BENCH_TMPDIR (parent of the scratch
# dir, which holds the destination and the spooled dumps; default $TMPDIR or
# /tmp). Everything it creates (databases, containers, files) is removed at
# exit, also on failure.
#
# Caveats, read before quoting numbers:
# - The restore runs against a server in a container limited to CPUS CPUs, but
#   pg_restore, zstd and backproof run on the host and share the machine's
#   CPUs with it (2 on the reference machine).
# - pgbench data is one big table (pgbench_accounts) and three small ones:
#   parallel restore jobs have little to share out. Databases with many
#   similar tables behave differently.
set -euo pipefail
export LC_ALL=C

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCALES=${SCALES:-"10 50"}
CPUS=${CPUS:-"1 2"}
MEMORY_MIB=${MEMORY_MIB:-1024}
ROUNDS=${ROUNDS:-3}
RESULTS_DIR=${RESULTS_DIR:-$REPO/bench-results}
export BACKPROOF_TESTENV_DIR=${BACKPROOF_TESTENV_DIR:-/tmp/bp-bench}

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, not '$ROUNDS'"
for s in $SCALES; do [[ $s =~ ^[1-9][0-9]*$ ]] || die "bad scale '$s' in SCALES"; done
[[ -n ${SCALES// /} ]] || die "SCALES is empty"
for c in $CPUS; do [[ $c =~ ^([1-9][0-9]*(\.[0-9]+)?|0\.[0-9]*[1-9][0-9]*)$ ]] || die "bad CPU limit '$c' in CPUS"; done
[[ -n ${CPUS// /} ]] || die "CPUS is empty"
read -r -a VARIANTS <<<"${VARIANTS:-V H S T F N}"
((${#VARIANTS[@]})) || die "VARIANTS is empty"
for v in "${VARIANTS[@]}"; do [[ $v == [VHSTFN] ]] || die "unknown variant '$v' in VARIANTS (V H S T F N)"; done
[[ $MEMORY_MIB =~ ^[1-9][0-9]*$ ]] || die "MEMORY_MIB must be a positive integer, not '$MEMORY_MIB'"
[[ -x /usr/bin/time ]] || die "/usr/bin/time (GNU time) is missing: run scripts/testenv.sh up"
for c in jq zstd; do command -v "$c" >/dev/null || die "$c is missing"; done

# ---------------------------------------------------------------- cleanup

WORK='' STARTED_TESTENV='' CREATED_DBS=() PG_BIN=''
RUN_ID=$$
LABEL=io.backproof.bench.run=$RUN_ID # on the by-hand containers
TARGET=bench-$RUN_ID                  # backproof labels its sandboxes io.backproof.target=TARGET

# remove_containers: the containers of this run (by hand, and backproof's if
# it was interrupted); other containers on the engine are left alone.
remove_containers() {
  local ids=()
  mapfile -t ids < <( (docker ps -aq --filter "label=$LABEL"; docker ps -aq --filter "label=io.backproof.target=$TARGET") 2>/dev/null | sort -u)
  ((${#ids[@]} == 0)) || docker rm -f -v "${ids[@]}" >/dev/null 2>&1 || say "could not remove containers ${ids[*]}"
}

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  remove_containers
  drop_dbs "${CREATED_DBS[@]}"
  [[ -z $WORK ]] || rm -rf "$WORK"
  testenv_down
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- servers

testenv_up
IMAGE=${IMAGE:-$BACKPROOF_TEST_PG_IMAGE}
docker image inspect "$IMAGE" >/dev/null 2>&1 || die "sandbox image $IMAGE is not present locally"


pg_env
export NO_PROXY='*' no_proxy='*'
# testcontainers-go (inside backproof) must use 127.0.0.1 and no reaper container.
export TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1 TESTCONTAINERS_RYUK_DISABLED=true

# ---------------------------------------------------------------- setup

WORK=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/bp-bench-verify.XXXXXX")
DEST=$WORK/dest   # backproof's local destination
SPOOL=$WORK/spool # backproof's spool directory (TMPDIR) and T's dump file
LOGS=$WORK/logs
mkdir -p "$DEST" "$SPOOL" "$LOGS"
RAW=$WORK/raw.tsv # one line per measurement
printf 'scale\tcpus\tvariant\tround\twall_s\tmachine_cpu_s\tbusy_before_pct\tready_s\tspool_s\tprep_s\trestore_s\tcounts_s\tamcheck_s\tquery_s\tchecks_s\trest_s\n' >"$RAW"

if [[ -n ${BACKPROOF:-} ]]; then
  [[ -x $BACKPROOF ]] || die "BACKPROOF=$BACKPROOF is not executable"
  BP=$BACKPROOF
else
  BP=$WORK/backproof
  build_backproof "$BP"
fi

# jobs_for CPUS: the pg_restore --jobs backproof uses (verify.Verifier.jobs).
jobs_for() { awk -v c="$1" 'BEGIN { if (c < 2) { print 1; exit } n = int(c); if (n < c) n++; if (n > 8) n = 8; print n }'; }

# One config per CPU limit. The DSN comes from the environment (${VAR} expansion).
export BENCH_PG_DSN=''
for cpus in $CPUS; do
  (umask 077 && cat >"$WORK/backproof-$cpus.yaml" <<EOF
log:
  level: info
  format: text
sandbox:
  images:
    postgres: "$IMAGE"
  memory: ${MEMORY_MIB}MiB
  cpus: $cpus
  timeout: 30m
destinations:
  local:
    type: local
    path: $DEST
targets:
  $TARGET:
    engine: postgres
    dsn: \${BENCH_PG_DSN}
    destinations: [local]
    verify:
      checks:
        - name: accounts-present
          query: SELECT count(*) FROM pgbench_accounts
          expect: "> 0"
EOF
  )
done

# The by-hand restore: MODE (H|S|T) IMAGE CPUS MEMORY_MIB JOBS ARTIFACT SPOOL_DIR PHASES LABEL.
# The sandbox password comes from BENCH_SANDBOX_PASSWORD (kept off argv).
# It appends "NAME EPOCHREALTIME" lines to PHASES: t0 ready spooled (T) restore restored end.
BYHAND=$WORK/byhand.sh
cat >"$BYHAND" <<'EOF'
set -euo pipefail
mode=$1 image=$2 cpus=$3 mem=$4 jobs=$5 artifact=$6 spool=$7 phases=$8 label=$9
mark() { echo "$1 $EPOCHREALTIME" >>"$phases"; }
mark t0
ready_line='database system is ready to accept connections'
cid='' zpid=''
cleanup() {
  set +e
  [[ -z $zpid ]] || kill "$zpid" 2>/dev/null
  [[ -z $cid ]] || docker rm -f -v "$cid" >/dev/null 2>&1
}
trap cleanup EXIT
server=()
if [[ $mode != H ]]; then # backproof's sandbox settings (engine/postgres/prove.go)
  server=(postgres -c fsync=off -c synchronous_commit=off -c full_page_writes=off
    -c wal_level=minimal -c max_wal_senders=0
    -c max_wal_size=4GB -c checkpoint_timeout=1h -c autovacuum=off)
fi
if [[ $mode == [TFN] ]]; then # decompress while the container starts, as backproof does
  (zstd -dqf "$artifact" -o "$spool/dump" && mark spooled) &
  zpid=$!
fi
cid=$(POSTGRES_PASSWORD=$BENCH_SANDBOX_PASSWORD docker run -d --rm --label "$label" \
  --memory "${mem}m" --memory-swap "${mem}m" --cpus "$cpus" -p 127.0.0.1::5432 \
  -e POSTGRES_PASSWORD -e POSTGRES_DB=restored "$image" "${server[@]}")
deadline=$((SECONDS + 120))
while :; do
  logs=$(docker logs "$cid" 2>&1) || { echo "container $cid is gone: $logs" >&2; exit 1; }
  n=$(grep -c "$ready_line" <<<"$logs" || true)
  ((n < 2)) || break
  ((SECONDS < deadline)) || { echo "not ready after 120 s: $logs" >&2; exit 1; }
  sleep 0.05
done
hostport=$(docker port "$cid" 5432/tcp | head -n 1)
[[ ${hostport%:*} == 127.0.0.1 ]] || { echo "port published on '$hostport', not 127.0.0.1" >&2; exit 1; }
mark ready
if [[ -n $zpid ]]; then wait "$zpid"; zpid=''; fi
export PGPASSWORD=$BENCH_SANDBOX_PASSWORD
dsn="host=127.0.0.1 port=${hostport##*:} user=postgres dbname=restored sslmode=disable connect_timeout=10"
restore=(pg_restore --no-owner --no-privileges --exit-on-error --no-password -d "$dsn")
mark restore
case $mode in
  H | S) zstd -dcq "$artifact" | "${restore[@]}" --single-transaction ;;
  T) if [[ $jobs -gt 1 ]]; then "${restore[@]}" --jobs="$jobs" "$spool/dump"; else "${restore[@]}" --single-transaction "$spool/dump"; fi ;;
  F) "${restore[@]}" --single-transaction "$spool/dump" ;;
  N) "${restore[@]}" "$spool/dump" ;;
esac
mark restored
n=$(psql -XAtq -d "$dsn" -c 'SELECT count(*) FROM pgbench_branches')
[[ $n -gt 0 ]] || { echo "restored pgbench_branches is empty" >&2; exit 1; }
rm -f "$spool/dump"
docker rm -f -v "$cid" >/dev/null
cid=''
mark end
EOF

# ---------------------------------------------------------------- measuring

# measure LOG CMD...: run CMD under GNU time. Sets M_WALL M_MACHINE.
# The command's stdout goes to LOG.out, its stderr to LOG; a failure is fatal.
measure() {
  local log=$1 tf=$WORK/time.out b0 b1; shift
  sync # untimed: start every measurement without the last one's dirty pages
  wait_quiet
  b0=$(busy_ticks)
  if ! /usr/bin/time -o "$tf" -f '%e' "$@" >"$log.out" 2>"$log"; then
    say "failed: ${*:1:3}... (log: $log)"
    tail -n 20 "$log" "$log.out" >&2
    exit 1
  fi
  b1=$(busy_ticks)
  M_WALL=$(tail -n 1 "$tf")
  M_MACHINE=$(awk -v t="$((b1 - b0))" -v hz="$HZ" 'BEGIN { printf "%.2f", t / hz }')
}

# record SCALE CPUS VARIANT ROUND READY SPOOL PREP RESTORE COUNTS AMCHECK QUERY CHECKS
record() {
  local rest
  rest=$(awk -v w="$M_WALL" -v p="$7" -v r="$8" -v c="${12}" 'BEGIN { printf "%.3f", w - p - r - c }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" \
    "$M_WALL" "$M_MACHINE" "$M_BUSY_BEFORE" "$5" "$6" "$7" "$8" "$9" "${10}" "${11}" "${12}" "$rest" >>"$RAW"
  say "  scale $1 cpus $2 round $4 variant $3: ${M_WALL}s (ready/spool $5/$6, restore $8, checks ${12}, rest $rest; machine cpu ${M_MACHINE}s)"
}

# run_verify SCALE CPUS ROUND
run_verify() {
  local scale=$1 cpus=$2 round=$3 log=$LOGS/$1-$2-V-$3.log
  measure "$log" env TMPDIR="$SPOOL" "$BP" verify -c "$WORK/backproof-$cpus.yaml" "$TARGET" --json
  local json=$log.out outcome
  outcome=$(jq -r '.verifications[0].outcome' "$json")
  [[ $outcome == pass ]] || { cat "$json" >&2; die "backproof verify: outcome '$outcome', not pass"; }
  # Every step's duration, by name; a missing step is an error.
  local fields
  fields=$(jq -r '.verifications[0] as $v | ($v.checks | map({(.name): .duration_seconds}) | add) as $c
    | [$c.sandbox, $c.checksum, $v.restore_duration_seconds, $c.tables + $c.schema, ($c.integrity // $c.amcheck), $c["accounts-present"]]
    | if any(. == null) then "missing" else map(tostring) | join(" ") end' "$json")
  [[ $fields != missing ]] || { cat "$json" >&2; die "backproof verify: a step is missing from the record"; }
  local ready spool restore counts amcheck query prep checks
  read -r ready spool restore counts amcheck query <<<"$fields"
  prep=$(awk -v a="$ready" -v b="$spool" 'BEGIN { printf "%.3f", (a > b ? a : b) }')
  checks=$(awk -v a="$counts" -v b="$amcheck" -v c="$query" 'BEGIN { printf "%.3f", a + b + c }')
  record "$scale" "$cpus" V "$round" "$ready" "$spool" "$prep" "$restore" "$counts" "$amcheck" "$query" "$checks"
}

# run_byhand SCALE CPUS MODE ROUND
run_byhand() {
  local scale=$1 cpus=$2 mode=$3 round=$4 log=$LOGS/$1-$2-$3-$4.log phases=$WORK/phases
  : >"$phases"
  measure "$log" bash "$BYHAND" "$mode" "$IMAGE" "$cpus" "$MEMORY_MIB" "$(jobs_for "$cpus")" \
    "$ARTIFACT" "$SPOOL" "$phases" "$LABEL"
  local ready spool prep restore
  read -r ready spool prep restore < <(awk '{ t[$1] = $2 } END {
      printf "%.3f %s %.3f %.3f\n", t["ready"] - t["t0"], ("spooled" in t ? sprintf("%.3f", t["spooled"] - t["t0"]) : "-"),
        t["restore"] - t["t0"], t["restored"] - t["restore"] }' "$phases")
  record "$scale" "$cpus" "$mode" "$round" "$ready" "$spool" "$prep" "$restore" - - - 0
}

run_variant() { # SCALE CPUS VARIANT ROUND
  case $3 in
    V) run_verify "$1" "$2" "$4" ;;
    *) run_byhand "$1" "$2" "$3" "$4" ;;
  esac
}

export PATH=$PG_BIN:$PATH # pg_restore, pgbench, psql of the server's major
BENCH_SANDBOX_PASSWORD=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
export BENCH_SANDBOX_PASSWORD
declare -A DB_SIZE DUMP_SIZE ART_SIZE

for scale in $SCALES; do
  db=bpbench_verify_s${scale}_$RUN_ID
  say "scale $scale: creating database $db (pgbench -i -s $scale)"
  psql -XAtq -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE \"$db\"" >/dev/null
  CREATED_DBS+=("$db")
  pgbench -i -q -s "$scale" "$db" >"$LOGS/pgbench-$scale.log" 2>&1 ||
    { tail -n 20 "$LOGS/pgbench-$scale.log" >&2; die "pgbench -i failed"; }
  psql -XAtq -v ON_ERROR_STOP=1 -d "$db" -c 'VACUUM ANALYZE' >/dev/null
  DB_SIZE[$scale]=$(psql -XAtq -d "$db" -c "SELECT pg_database_size(current_database())")
  BENCH_PG_DSN="postgres://$PGUSER:$PGPASSWORD@$PGHOST:$PGPORT/$db${DSN_PARAMS:-?sslmode=disable}"

  say "scale $scale: backing up (untimed)"
  rm -rf "${DEST:?}"/* "$DEST"/.tmp
  first_cfg=$WORK/backproof-$(awk '{ print $1 }' <<<"$CPUS").yaml
  "$BP" backup -c "$first_cfg" "$TARGET" --json >"$LOGS/backup-$scale.json" 2>"$LOGS/backup-$scale.log" ||
    { tail -n 20 "$LOGS/backup-$scale.log" >&2; die "backproof backup failed"; }
  ARTIFACT=$(find "$DEST" -path '*/.tmp' -prune -o -name '*.zst' -type f -print | head -n 1)
  [[ -n $ARTIFACT ]] || die "no artifact in $DEST after the backup"
  [[ $(zstd -dc "$ARTIFACT" | head -c 5) == PGDMP ]] || die "the artifact is not a zstd'd custom-format archive"
  ART_SIZE[$scale]=$(stat -c %s "$ARTIFACT")
  DUMP_SIZE[$scale]=$(zstd -dc "$ARTIFACT" | wc -c)
  psql -XAtq -d postgres -c "DROP DATABASE \"$db\" WITH (FORCE)" >/dev/null # the backup is all we need

  # Untimed warm-up: the image, pg_restore and the artifact in the page cache.
  say "scale $scale: warm-up verify (untimed)"
  TMPDIR=$SPOOL "$BP" verify -c "$first_cfg" "$TARGET" >"$LOGS/warmup-$scale.log" 2>&1 ||
    { tail -n 20 "$LOGS/warmup-$scale.log" >&2; die "warm-up verify failed"; }

  for ((round = 1; round <= ROUNDS; round++)); do
    for cpus in $CPUS; do
      # Rotate the order so no variant always runs first (or right after another).
      n=${#VARIANTS[@]}
      for ((i = 0; i < n; i++)); do
        run_variant "$scale" "$cpus" "${VARIANTS[(i + round - 1) % n]}" "$round"
      done
    done
  done
done

# ---------------------------------------------------------------- report

# stat_of SCALE CPUS VARIANT COLUMN FUNC: median|min|max|list of a raw column
# (5 wall, 6 machine cpu, 8 ready, 9 spool, 10 prep, 11 restore, 12 counts,
# 13 amcheck, 14 query, 15 checks, 16 rest); "-" values are skipped.
stat_of() {
  awk -F'\t' -v s="$1" -v c="$2" -v v="$3" -v k="$4" 'NR > 1 && $1 == s && $2 == c && $3 == v && $k != "-" { print $k }' "$RAW" |
    sort -g | awk -v f="$5" '{ x[NR] = $1 }
      END {
        if (NR == 0) { print "-"; exit }
        if (f == "max") print x[NR]
        else if (f == "min") print x[1]
        else if (f == "list") { for (i = 1; i <= NR; i++) printf "%s%s", x[i], (i < NR ? " " : "\n") }
        else if (NR % 2) printf "%.2f\n", x[(NR + 1) / 2]
        else printf "%.2f\n", (x[NR / 2] + x[NR / 2 + 1]) / 2
      }'
}

declare -A NAME=(
  [F]='F: S from the decompressed file, one job, `--single-transaction`'
  [N]='N: F without `--single-transaction` (one job, autocommit)'
  [V]='V: `backproof verify --json`'
  [H]='H: by hand, default server, `zstd -dc \| pg_restore --single-transaction`'
  [S]='S: H with backproof'"'"'s server settings'
  [T]='T: S + spool to a file + `pg_restore --jobs=N`'
)

mem_kib=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
commit=$(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=''
if [[ -n $(cd "$REPO" && git status --porcelain 2>/dev/null) ]]; then dirty=', uncommitted changes in tree'; fi
stamp=$(date -u +%Y%m%dT%H%M%SZ)

report() {
  echo "## Verify benchmark (time to verdict), $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "Machine: $(nproc) CPUs ($cpu_model), $(awk -v k="$mem_kib" 'BEGIN { printf "%.1f GiB", k / 1048576 }') RAM, $(uname -r); Docker $(docker version -f '{{.Server.Version}}' 2>/dev/null)."
  echo "Software: backproof $commit$dirty ($("$BP" version | head -n 1)); $(pg_restore --version); sandbox image $IMAGE (server $(docker run --rm "$IMAGE" postgres --version 2>/dev/null | awk '{ print $3 }')); $(zstd --version | sed 's/^\*\*\* //; s/ \*\*\*$//; s/, by.*//')."
  echo "Sandbox: memory ${MEMORY_MIB} MiB, CPUs $CPUS (the same --memory/--cpus for the by-hand containers)."
  echo "Method: ${ROUNDS} rounds per scale and CPU limit, variants in rotating order, \`sync\` and a wait for an idle machine (<15% CPU, up to ${QUIET_WAIT}s) before each run; median wall time (GNU time %e); each step column is the median of that step over the rounds. prep = until both the server is ready and the dump is at hand (V: max of its sandbox and checksum steps; T: max of container ready and decompressed file); checks = V's tables + schema + amcheck + the one query check; rest = wall − prep − restore − checks (process start, connecting to Docker, removing the container and its volume, writing the record). machine CPU = busy CPU seconds of the whole machine during the run (includes the container's server)."
  echo
  echo "### Summary"
  echo
  echo "| scale | DB (MiB) | dump (MiB) | sandbox CPUs / jobs | V verify (s) | H by hand (s) | S tuned (s) | T tuned + jobs (s) | V vs H | V vs S | V vs T | V restore (s) | V checks (s) | V without checks vs H |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  local s c v wv wh ws wt
  for s in $SCALES; do
    for c in $CPUS; do
      wv=$(stat_of "$s" "$c" V 5 median) wh=$(stat_of "$s" "$c" H 5 median)
      ws=$(stat_of "$s" "$c" S 5 median) wt=$(stat_of "$s" "$c" T 5 median)
      local ck nock
      ck=$(stat_of "$s" "$c" V 15 median)
      nock=$(awk -v w="$wv" -v k="$ck" 'BEGIN { if (w == "-" || k == "-") print "-"; else printf "%.2f", w - k }')
      printf '| %s | %s | %s | %s / %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$s" \
        "$(mib "${DB_SIZE[$s]}")" "$(mib "${DUMP_SIZE[$s]}")" "$c" "$(jobs_for "$c")" "$wv" "$wh" "$ws" "$wt" \
        "$(ratio "$wv" "$wh")" "$(ratio "$wv" "$ws")" "$(ratio "$wv" "$wt")" \
        "$(stat_of "$s" "$c" V 11 median)" "$ck" "$(ratio "$nock" "$wh")"
    done
  done
  echo
  for s in $SCALES; do
    for c in $CPUS; do
      wh=$(stat_of "$s" "$c" H 5 median)
      echo "### pgbench scale $s — database $(mib "${DB_SIZE[$s]}") MiB, artifact $(mib "${ART_SIZE[$s]}") MiB (dump $(mib "${DUMP_SIZE[$s]}") MiB); sandbox CPUs $c, jobs $(jobs_for "$c")"
      echo
      echo "| variant | median wall (s) | all rounds (s) | vs H | prep (s) | restore (s) | checks (s) | rest (s) | machine CPU (s) |"
      echo "|---|---:|---|---:|---:|---:|---:|---:|---:|"
      for v in "${VARIANTS[@]}"; do
        local w; w=$(stat_of "$s" "$c" "$v" 5 median)
        printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "${NAME[$v]}" "$w" "$(stat_of "$s" "$c" "$v" 5 list)" \
          "$(ratio "$w" "$wh")" "$(stat_of "$s" "$c" "$v" 10 median)" "$(stat_of "$s" "$c" "$v" 11 median)" \
          "$(stat_of "$s" "$c" "$v" 15 median)" "$(stat_of "$s" "$c" "$v" 16 median)" "$(stat_of "$s" "$c" "$v" 6 median)"
      done
      echo
      printf 'V steps (median s): sandbox start %s, checksum step %s (download + decompress + SHA-256, overlapped with the sandbox start; recorded when both are done), restore %s, row counts + schema %s, amcheck %s, query check %s, rest %s. By hand, container ready: H %s, S %s, T %s (T decompressed its file in %s, meanwhile).\n' \
        "$(stat_of "$s" "$c" V 8 median)" "$(stat_of "$s" "$c" V 9 median)" "$(stat_of "$s" "$c" V 11 median)" \
        "$(stat_of "$s" "$c" V 12 median)" "$(stat_of "$s" "$c" V 13 median)" "$(stat_of "$s" "$c" V 14 median)" \
        "$(stat_of "$s" "$c" V 16 median)" "$(stat_of "$s" "$c" H 8 median)" "$(stat_of "$s" "$c" S 8 median)" \
        "$(stat_of "$s" "$c" T 8 median)" "$(stat_of "$s" "$c" T 9 median)"
      echo
    done
  done
}

mkdir -p "$RESULTS_DIR"
report | tee "$RESULTS_DIR/verify-$stamp.md"
cp "$RAW" "$RESULTS_DIR/verify-$stamp.tsv"
say "saved $RESULTS_DIR/verify-$stamp.md and .tsv"
