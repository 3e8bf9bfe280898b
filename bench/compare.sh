#!/usr/bin/env bash
# Every headline figure of backproof next to what a person would run instead,
# on two databases, in one run, printed as ratios (bench/README.md):
#
#   bench/compare.sh                 # orders (~250 MB) and pgbench scale 20, 5 rounds
#   QUICK=1 bench/compare.sh         # orders ~40 MB, pgbench scale 5, 3 rounds
#   FIGURES="backup restore" ROUNDS=7 bench/compare.sh
#
# Figures, each an alternated series (A B A B ..., the order rotating every
# round) timed with GNU time, ratios taken round by round, their median quoted:
#   backup:  P = pg_dump -Fc -Z0 | zstd -3 > file (the pipe), F = pg_dump -Fc -Z0
#            > /dev/null (the floor), L = backproof backup to one local
#            destination, S = to local + MinIO. L/P, S/P, F/P; CPU L/P; peak RSS.
#   restore: Z = zstd -dc | pg_restore --single-transaction into a new database,
#            R = backproof restore --to the same. Throughput ratio Z/R.
#   verify:  H = by hand: docker run the sandbox image, wait until ready,
#            zstd -dc | pg_restore, read a table, docker rm; V = backproof verify
#            (checksum, restore, row counts, schema, amcheck). V/H. A first
#            verify before the rounds, outside the ratio, builds the seed image
#            (the sandbox's data prepared once per image, as the first
#            verification with an image on a Docker engine does; seed images
#            no container uses are removed before it); its time has its own line.
#
# It starts its own PostgreSQL 15 and MinIO on 127.0.0.1 (servers_up in lib.sh),
# builds ./cmd/backproof (or takes BACKPROOF), and removes everything it made
# at exit. Knobs: ORDERS (orders rows, default 140000), SCALE (pgbench, 20),
# DATABASES ("orders pgbench"), ROUNDS (5), FIGURES ("backup restore verify"),
# CPUS (sandbox CPUs, 2), MEMORY_MIB (1024), QUIET_WAIT (seconds to wait for an
# idle machine before a run, 5: this machine is rarely idle, so the load is
# recorded instead), BENCH_TMPDIR, RESULTS_DIR.
set -euo pipefail
export LC_ALL=C

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -n ${QUICK:-} ]]; then ORDERS=${ORDERS:-20000} SCALE=${SCALE:-5} ROUNDS=${ROUNDS:-3}; fi
ORDERS=${ORDERS:-140000} SCALE=${SCALE:-20} ROUNDS=${ROUNDS:-5}
DATABASES=${DATABASES:-"orders pgbench"} FIGURES=${FIGURES:-"backup restore verify"}
CPUS=${CPUS:-2} MEMORY_MIB=${MEMORY_MIB:-1024}
QUIET_WAIT=${QUIET_WAIT:-5}
RESULTS_DIR=${RESULTS_DIR:-$REPO/bench-results}
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

for n in ORDERS SCALE ROUNDS MEMORY_MIB; do [[ ${!n} =~ ^[1-9][0-9]*$ ]] || die "$n must be a positive integer"; done
[[ -x /usr/bin/time ]] || die "/usr/bin/time (GNU time) is missing"
for c in jq zstd curl docker; do command -v "$c" >/dev/null || die "$c is missing"; done

WORK='' BUCKET='' RUN_ID=$$
TARGET_PREFIX=bench-$RUN_ID LABEL=io.backproof.bench.run=$RUN_ID
cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  local ids
  ids=$( (docker ps -aq --filter "label=$LABEL"; for db in $DATABASES; do docker ps -aq --filter "label=io.backproof.target=$TARGET_PREFIX-$db"; done) 2>/dev/null | sort -u)
  # shellcheck disable=SC2086 # one id per line
  [[ -z $ids ]] || docker rm -f -v $ids >/dev/null 2>&1
  [[ -z $WORK ]] || { servers_down "$WORK/servers"; rm -rf "$WORK"; }
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

WORK=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/bp-compare.XXXXXX")
DEST=$WORK/dest OUT=$WORK/out LOGS=$WORK/logs SPOOL=$WORK/spool
mkdir -p "$DEST" "$OUT" "$LOGS" "$SPOOL"
chmod 755 "$WORK"
say "servers: PostgreSQL and MinIO under $WORK/servers"
servers_up "$WORK/servers"
pg_env
export PATH=$PG_BIN:$PATH NO_PROXY='*' no_proxy='*'
export TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1 TESTCONTAINERS_RYUK_DISABLED=true
IMAGE=${IMAGE:-backproof-sandbox/postgres:15}
[[ $FIGURES != *verify* ]] || docker image inspect "$IMAGE" >/dev/null 2>&1 || die "sandbox image $IMAGE is missing (scripts/sandbox-images.sh)"

s3curl() {
  printf 'user = "%s:%s"\n' "$BACKPROOF_TEST_S3_ACCESS_KEY" "$BACKPROOF_TEST_S3_SECRET_KEY" |
    curl -fsS --noproxy '*' -m 60 --aws-sigv4 'aws:amz:us-east-1:s3' -K - "$@"
}
BUCKET=bench
s3curl -X PUT -o /dev/null "$BACKPROOF_TEST_S3_ENDPOINT/$BUCKET" || die "cannot create bucket"

if [[ -n ${BACKPROOF:-} ]]; then BP=$BACKPROOF; else
  BP=$WORK/backproof
  build_backproof "$BP"
fi

dsn_of() { echo "postgres://$PGUSER:$PGPASSWORD@$PGHOST:$PGPORT/$1?sslmode=disable"; }
psql_q() { psql -XAtq -v ON_ERROR_STOP=1 "$@"; }
export BENCH_ORDERS_DSN=$(dsn_of src_orders) BENCH_PGBENCH_DSN=$(dsn_of src_pgbench)
export BENCH_S3_ACCESS_KEY=$BACKPROOF_TEST_S3_ACCESS_KEY BENCH_S3_SECRET_KEY=$BACKPROOF_TEST_S3_SECRET_KEY
CFG=$WORK/backproof.yaml
{
  cat <<EOF
sandbox:
  images: {postgres: "$IMAGE"}
  memory: ${MEMORY_MIB}MiB
  cpus: $CPUS
destinations:
  local: {type: local, path: $DEST}
  minio:
    type: s3
    bucket: $BUCKET
    region: us-east-1
    endpoint: $BACKPROOF_TEST_S3_ENDPOINT
    path_style: true
    access_key_id: \${BENCH_S3_ACCESS_KEY}
    secret_access_key: \${BENCH_S3_SECRET_KEY}
targets:
EOF
  for db in $DATABASES; do
    upper=$(tr a-z A-Z <<<"$db")
    printf '  %s-%s:\n    engine: postgres\n    dsn: ${BENCH_%s_DSN}\n    destinations: [local]\n' "$TARGET_PREFIX" "$db" "$upper"
    printf '  %s-%s-s3:\n    engine: postgres\n    dsn: ${BENCH_%s_DSN}\n    destinations: [local, minio]\n' "$TARGET_PREFIX" "$db" "$upper"
  done
} >"$CFG"
chmod 600 "$CFG"

RAW=$WORK/raw.tsv
printf 'db\tfigure\tvariant\tround\twall\tuser\tsys\trss_kib\tbusy_pct\n' >"$RAW"
# measure DB FIGURE VARIANT ROUND CMD...: one timed run; a failure is fatal.
measure() {
  local db=$1 fig=$2 v=$3 round=$4 log=$LOGS/$1-$2-$3-$4 tf=$WORK/time.out
  shift 4
  sync
  wait_quiet
  if ! /usr/bin/time -o "$tf" -f '%e %U %S %M' "$@" >"$log.out" 2>"$log.err"; then
    tail -n 20 "$log.err" "$log.out" >&2
    die "$db $fig $v round $round failed"
  fi
  read -r wall user sys rss < <(tail -n 1 "$tf")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$db" "$fig" "$v" "$round" "$wall" "$user" "$sys" "$rss" "$M_BUSY_BEFORE" >>"$RAW"
  say "  $db $fig round $round $v: ${wall}s (cpu $(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')s, $((rss / 1024)) MiB; machine ${M_BUSY_BEFORE}% busy before)"
}

# ---------------------------------------------------------------- databases

declare -A DB_BYTES ART_BYTES DUMP_BYTES CHECK_TABLE=([orders]=payments [pgbench]=pgbench_accounts)
for db in $DATABASES; do
  psql_q -d postgres -c "CREATE DATABASE src_$db" >/dev/null
  case $db in
    orders)
      say "orders: generating $ORDERS orders (bench/orders.sql)"
      psql -Xq -v ON_ERROR_STOP=1 -v orders="$ORDERS" -d src_orders -f "$REPO/bench/orders.sql" >"$LOGS/gen-orders.log" 2>&1 ||
        { tail "$LOGS/gen-orders.log" >&2; die "generating orders failed"; } ;;
    pgbench)
      say "pgbench: pgbench -i -s $SCALE"
      pgbench -i -q -s "$SCALE" src_pgbench >"$LOGS/gen-pgbench.log" 2>&1 || die "pgbench -i failed"
      psql_q -d src_pgbench -c 'VACUUM ANALYZE' ;;
    *) die "unknown database '$db' in DATABASES (orders pgbench)" ;;
  esac
  DB_BYTES[$db]=$(psql_q -d "src_$db" -c 'SELECT pg_database_size(current_database())')
  pg_dump -Fc -Z0 -d "src_$db" | wc -c >"$WORK/dump-bytes" # also warms the page cache
  DUMP_BYTES[$db]=$(<"$WORK/dump-bytes")
done

# rounds DB FIGURE VARIANT...: ROUNDS rounds of run_DB_FIGURE VARIANT ROUND, rotating the order.
rounds() {
  local db=$1 fig=$2 r i; shift 2
  local vs=("$@")
  for ((r = 1; r <= ROUNDS; r++)); do
    for ((i = 0; i < ${#vs[@]}; i++)); do
      "run_$fig" "$db" "${vs[(i + r - 1) % ${#vs[@]}]}" "$r"
    done
  done
}

run_backup() {
  local db=$1 v=$2 r=$3 target=$TARGET_PREFIX-$1
  case $v in
    P) measure "$db" backup P "$r" bash -c 'set -o pipefail; pg_dump -Fc -Z0 -d "$1" | zstd -q -3 > "$2"' _ "src_$db" "$OUT/pipe.zst"
       rm -f "$OUT/pipe.zst" ;;
    F) measure "$db" backup F "$r" bash -c 'set -o pipefail; pg_dump -Fc -Z0 -d "$1" > /dev/null' _ "src_$db" ;;
    L | S)
      [[ $v == L ]] || target+=-s3
      measure "$db" backup "$v" "$r" "$BP" backup -c "$CFG" "$target" --json
      jq -e '[.backups[0].destinations[] | select(.committed | not)] | length == 0' "$LOGS/$db-backup-$v-$r.out" >/dev/null ||
        die "backup $v round $r did not commit everywhere"
      ART_BYTES[$db]=$(jq -r '.backups[0].size' "$LOGS/$db-backup-$v-$r.out")
      rm -rf "${DEST:?}/$target" ;; # the next run lists no history
  esac
}

restored_ok() { # DB INTO: the restored copy has the source's rows in CHECK_TABLE
  local t=${CHECK_TABLE[$1]} want got
  want=$(psql_q -d "src_$1" -c "SELECT count(*) FROM $t") got=$(psql_q -d "$2" -c "SELECT count(*) FROM $t")
  [[ $want == "$got" ]] || die "$2: $t has $got rows, the source $want"
}

run_restore() {
  local db=$1 v=$2 r=$3 into=into_$1
  psql_q -d postgres -c "DROP DATABASE IF EXISTS $into" -c "CREATE DATABASE $into"
  case $v in
    Z) measure "$db" restore Z "$r" bash -c 'set -o pipefail; zstd -qdc "$1" | pg_restore --single-transaction --exit-on-error --no-owner --no-privileges -d "$2"' _ "$ARTIFACT" "$into" ;;
    R) measure "$db" restore R "$r" env TMPDIR="$SPOOL" "$BP" restore -c "$CFG" "$TARGET_PREFIX-$db" --from local --to "$(dsn_of "$into")" --json ;;
  esac
  restored_ok "$db" "$into"
  psql_q -d postgres -c "DROP DATABASE $into"
}

# The by-hand verification: the same image and limits as backproof's sandbox.
BYHAND=$WORK/byhand.sh
cat >"$BYHAND" <<'EOF'
set -euo pipefail
image=$1 cpus=$2 mem=$3 artifact=$4 label=$5 table=$6
cid=''
trap '[[ -z $cid ]] || docker rm -f -v "$cid" >/dev/null 2>&1' EXIT
cid=$(docker run -d --rm --label "$label" --memory "${mem}m" --memory-swap "${mem}m" --cpus "$cpus" \
  -p 127.0.0.1::5432 -e POSTGRES_PASSWORD=byhand -e POSTGRES_DB=restored "$image")
until [[ $(docker logs "$cid" 2>&1 | grep -c 'database system is ready to accept connections') -ge 2 ]]; do sleep 0.05; done
port=$(docker port "$cid" 5432/tcp | head -n 1)
dsn="host=127.0.0.1 port=${port##*:} user=postgres password=byhand dbname=restored sslmode=disable"
zstd -dcq "$artifact" | pg_restore --no-owner --no-privileges --exit-on-error --single-transaction -d "$dsn"
[[ $(psql -XAtq -d "$dsn" -c "SELECT count(*) > 0 FROM $table") == t ]]
docker rm -f -v "$cid" >/dev/null
cid=''
EOF

run_verify() {
  local db=$1 v=$2 r=$3
  case $v in
    H) measure "$db" verify H "$r" bash "$BYHAND" "$IMAGE" "$CPUS" "$MEMORY_MIB" "$ARTIFACT" "$LABEL" "${CHECK_TABLE[$db]}" ;;
    V | first)
       measure "$db" verify "$v" "$r" env TMPDIR="$SPOOL" "$BP" verify -c "$CFG" "$TARGET_PREFIX-$db" --json
       jq -e '[.verifications[].outcome] | length > 0 and all(. == "pass")' "$LOGS/$db-verify-$v-$r.out" >/dev/null ||
         { cat "$LOGS/$db-verify-$v-$r.out" >&2; die "verify $v round $r did not pass"; } ;;
  esac
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for db in $DATABASES; do
  for fig in $FIGURES; do
    case $fig in
      backup) say "$db: backup"; rounds "$db" backup P L S F ;;
      restore | verify)
        if [[ -z $(find "$DEST" -name '*.zst' -path "*/$TARGET_PREFIX-$db/*" -print -quit) ]]; then
          "$BP" backup -c "$CFG" "$TARGET_PREFIX-$db" --json >"$LOGS/$db-seed.json" 2>"$LOGS/$db-seed.err" || die "backup failed"
          ART_BYTES[$db]=$(jq -r '.backups[0].size' "$LOGS/$db-seed.json")
        fi
        ARTIFACT=$(find "$DEST" -name '*.zst' -path "*/$TARGET_PREFIX-$db/*" -print | sort | tail -n 1)
        say "$db: $fig"
        if [[ $fig == restore ]]; then rounds "$db" restore Z R; continue; fi
        # The first verification with an image builds its seed image, the
        # sandbox's data prepared once (sandbox/docker/seed.go): seed images
        # no container uses are removed first, so that this run measures it.
        if [[ -z ${SEEDED:-} ]]; then
          docker image ls -q --filter label=io.backproof.seed | xargs -r docker image rm >/dev/null 2>&1 || true
          run_verify "$db" first 0
          SEEDED=1
        fi
        rounds "$db" verify H V ;;
      *) die "unknown figure '$fig' (backup restore verify)" ;;
    esac
  done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report

# col DB FIGURE VARIANT FIELD: the values, one a line. med: the median of stdin.
col() { awk -F'\t' -v d="$1" -v f="$2" -v v="$3" -v c="$4" 'NR > 1 && $1 == d && $2 == f && $3 == v { print $c }' "$RAW"; }
med() { sort -g | awk '{ x[NR] = $1 } END { if (!NR) print "-"; else if (NR % 2) print x[(NR + 1) / 2]; else print (x[NR / 2] + x[NR / 2 + 1]) / 2 }'; }
cpu() { awk -F'\t' -v d="$1" -v f="$2" -v v="$3" 'NR > 1 && $1 == d && $2 == f && $3 == v { print $6 + $7 }' "$RAW"; }
# pair DB FIGURE A B [cpu]: the median over rounds of A's figure / B's in the same round.
pair() {
  local get=col; [[ ${5:-} == cpu ]] && get=cpu
  paste <($get "$1" "$2" "$3" 5) <($get "$1" "$2" "$4" 5) 2>/dev/null | awk '$2 > 0 { printf "%.3f\n", $1 / $2 }' | med
}
fmt() { awk -v x="$1" 'BEGIN { if (x == "-") print "-"; else printf "%.2f", x }'; }
busy() { awk -F'\t' -v d="$1" 'NR > 1 && $1 == d { print $9 }' "$RAW" | med; }

report() {
  echo "## backproof vs by hand, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "Command: \`ORDERS=$ORDERS SCALE=$SCALE ROUNDS=$ROUNDS FIGURES=\"$FIGURES\" bench/compare.sh\` at $(cd "$REPO" && git rev-parse --short HEAD)$( [[ -z $(cd "$REPO" && git status --porcelain) ]] || echo ' (uncommitted changes)')."
  echo "Machine: $(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM; $(pg_dump --version); $(zstd --version | sed 's/^\*\*\* //; s/,.*//'); sandbox $CPUS CPUs, ${MEMORY_MIB} MiB."
  echo "Load average (1/5/15 min) $LOAD_BEFORE at the start, $LOAD_AFTER at the end."
  echo
  local db
  for db in $DATABASES; do
    echo "### $db: database $(mib "${DB_BYTES[$db]}") MiB, dump $(mib "${DUMP_BYTES[$db]}") MiB, artifact $(mib "${ART_BYTES[$db]:-0}") MiB (median machine busy before a run: $(busy "$db")%)"
    echo
    echo "| figure | backproof | by hand | ratio (median of rounds) | target |"
    echo "|---|---:|---:|---:|---|"
    if [[ $FIGURES == *backup* ]]; then
      echo "| backup, one local destination: wall | $(col "$db" backup L 5 | med) s | $(col "$db" backup P 5 | med) s (pipe) | $(fmt "$(pair "$db" backup L P)") | <= 0.75 |"
      echo "| backup, one local destination: CPU | $(cpu "$db" backup L | med) s | $(cpu "$db" backup P | med) s | $(fmt "$(pair "$db" backup L P cpu)") | <= 1.20 |"
      echo "| backup, local + MinIO: wall | $(col "$db" backup S 5 | med) s | $(col "$db" backup P 5 | med) s | $(fmt "$(pair "$db" backup S P)") | <= 0.90 |"
      echo "| floor: pg_dump alone, wall | - | $(col "$db" backup F 5 | med) s | $(fmt "$(pair "$db" backup F P)") of the pipe | - |"
      echo "| peak RSS, local + MinIO (max of rounds) | $(col "$db" backup S 8 | sort -g | tail -n 1 | awk '{ printf "%.0f", $1 / 1024 }') MiB | $(col "$db" backup P 8 | sort -g | tail -n 1 | awk '{ printf "%.0f", $1 / 1024 }') MiB | - | <= 64 MiB |"
    fi
    if [[ $FIGURES == *restore* ]]; then
      echo "| restore --to: throughput | $(col "$db" restore R 5 | med) s | $(col "$db" restore Z 5 | med) s (zstd -dc \\| pg_restore) | $(fmt "$(pair "$db" restore Z R)") | >= 1.00 |"
    fi
    if [[ $FIGURES == *verify* ]]; then
      echo "| time to verdict | $(col "$db" verify V 5 | med) s | $(col "$db" verify H 5 | med) s (restore by hand) | $(fmt "$(pair "$db" verify V H)") | <= 0.80 |"
      [[ -z $(col "$db" verify first 5) ]] ||
        echo "| first verify with the image (builds its seed image, once) | $(col "$db" verify first 5) s | - | - | - |"
    fi
    echo
  done
  echo "Ratios are taken round by round (both runs of a pair within seconds of each other), then the median over $ROUNDS rounds; walls are medians."
}

mkdir -p "$RESULTS_DIR"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
report | tee "$RESULTS_DIR/compare-$stamp.md"
cp "$RAW" "$RESULTS_DIR/compare-$stamp.tsv"
say "raw data: $RESULTS_DIR/compare-$stamp.tsv"
