#!/usr/bin/env bash
# Redis dump throughput: `backproof backup` of a Redis holding about SIZE_MB
# of data, next to `redis-cli --rdb` (the same replication protocol: no
# checks, no compression) and `redis-cli --rdb - | zstd -3`.
#
#   bench/redis.sh                 SIZE_MB=100, ROUNDS=3
#   SIZE_MB=500 ROUNDS=5 bench/redis.sh
#
# It starts its own redis-server (Debian's 7.0, on a free 127.0.0.1 port with
# a random password, diskless replication without delay) and fills it with
# 1 KiB base64 strings of random bytes (zstd saves about a quarter of them);
# backproof writes to one local destination. Each variant runs ROUNDS times
# under GNU time, in rotating order, after waiting for a quiet machine; the
# report (markdown, on stdout) gives the median wall time, MB/s of the RDB
# snapshot and peak RSS. Everything is removed at exit.
set -euo pipefail
export LC_ALL=C

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIZE_MB=${SIZE_MB:-100}
ROUNDS=${ROUNDS:-3}
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[[ $SIZE_MB =~ ^[1-9][0-9]*$ && $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "SIZE_MB and ROUNDS must be positive integers"
for tool in redis-server redis-cli zstd /usr/bin/time; do
  command -v "$tool" >/dev/null || die "$tool is missing (scripts/testenv.sh up installs it)"
done

SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/bp-bench-redis.XXXXXX")
REDIS_PID=''
cleanup() {
  [[ -z $REDIS_PID ]] || kill "$REDIS_PID" 2>/dev/null || true
  rm -rf "$SCRATCH"
}
trap cleanup EXIT

build_backproof "$SCRATCH/backproof"

PASS=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
PORT=$((20000 + RANDOM % 12000))
mkdir -p "$SCRATCH/redis" "$SCRATCH/dest"
cat >"$SCRATCH/redis/redis.conf" <<CONF
port $PORT
bind 127.0.0.1
dir $SCRATCH/redis
save ""
appendonly no
requirepass $PASS
repl-diskless-sync yes
repl-diskless-sync-delay 0
CONF
redis-server "$SCRATCH/redis/redis.conf" >"$SCRATCH/redis/log" 2>&1 &
REDIS_PID=$!
export REDISCLI_AUTH=$PASS # redis-cli reads the password here, not from argv
for _ in {1..50}; do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

keys=$((SIZE_MB * 1024))
say "filling Redis with $keys keys of 1 KiB"
head -c $((keys * 768)) /dev/urandom | base64 -w 1024 |
  awk '{ k = "key:" NR; printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(k), k, length($0), $0 }' |
  redis-cli -p "$PORT" --pipe >/dev/null

export BENCH_REDIS_DSN="redis://:$PASS@127.0.0.1:$PORT"
cat >"$SCRATCH/backproof.yaml" <<CONF
log: {level: warn}
destinations:
  local: {type: local, path: $SCRATCH/dest}
targets:
  cache:
    engine: redis
    dsn: \${BENCH_REDIS_DSN}
    destinations: [local]
CONF

redis-cli -p "$PORT" --rdb "$SCRATCH/ref.rdb" >/dev/null 2>&1
RDB_BYTES=$(stat -c %s "$SCRATCH/ref.rdb")
rm -f "$SCRATCH/ref.rdb"

declare -A CMD=(
  [R]="redis-cli -p $PORT --rdb $SCRATCH/out.rdb >/dev/null 2>&1"
  [Z]="set -o pipefail; redis-cli -p $PORT --rdb - 2>/dev/null | zstd -q -3 >$SCRATCH/out.rdb.zst"
  [B]="$SCRATCH/backproof backup -c $SCRATCH/backproof.yaml >/dev/null"
)
declare -A NAME=(
  [R]='`redis-cli --rdb FILE`'
  [Z]='`redis-cli --rdb - \| zstd -3 > FILE`'
  [B]='`backproof backup`, one local destination'
)
order=(R Z B)
declare -A WALL RSS
for ((round = 1; round <= ROUNDS; round++)); do
  for v in "${order[@]}"; do
    wait_quiet
    sync
    /usr/bin/time -f '%e %M' -o "$SCRATCH/time" bash -c "${CMD[$v]}"
    read -r wall rss <"$SCRATCH/time"
    WALL[$v]+="$wall "
    RSS[$v]=$(( ${RSS[$v]:-0} > rss ? ${RSS[$v]:-0} : rss ))
    rm -rf "$SCRATCH/out.rdb" "$SCRATCH/out.rdb.zst" "${SCRATCH:?}/dest/"*
    say "round $round $v: ${wall}s"
  done
  order=("${order[@]:1}" "${order[0]}")
done

median() { tr ' ' '\n' | grep . | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
echo "Redis $(redis-server --version | awk '{print $3}' | cut -d= -f2), RDB snapshot $(mib "$RDB_BYTES") MiB ($keys keys), $ROUNDS rounds, median:"
echo
echo "| variant | wall s | MB/s of the RDB | peak RSS MiB |"
echo "|---|---:|---:|---:|"
for v in R Z B; do
  m=$(echo "${WALL[$v]}" | median)
  echo "| ${NAME[$v]} | $m | $(awk -v b="$RDB_BYTES" -v s="$m" 'BEGIN { printf "%.0f", b / 1e6 / s }') | $(awk -v k="${RSS[$v]}" 'BEGIN { printf "%.0f", k / 1024 }') |"
done
