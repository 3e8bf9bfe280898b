#!/usr/bin/env bash
# Idle daemon: CPU and memory of `backproof daemon` between jobs.
#
#   bench/idle.sh                 60 s, scraping /metrics every 15 s
#   SECONDS_IDLE=300 bench/idle.sh
#
# Starts the daemon on a config with one target whose backup and verify run
# daily (so nothing runs while measuring) and a local destination, waits for
# /readyz, then samples the process for SECONDS_IDLE seconds while fetching
# /metrics every 15 s as Prometheus would. Prints CPU time used (user+system,
# from /proc/PID/stat) as a share of one core, and RSS (VmRSS, VmHWM).
# Needs only a built binary: no database is contacted while idle.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"
SECONDS_IDLE=${SECONDS_IDLE:-60}
WORK=$(mktemp -d /tmp/bp-bench-idle.XXXXXX)
PID=''
cleanup() { [[ -z $PID ]] || kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
build_backproof "$WORK/backproof"
PORT=$((20000 + RANDOM % 12000))
mkdir -p "$WORK/dest"
cat >"$WORK/c.yaml" <<YAML
listen: 127.0.0.1:$PORT
destinations:
  local: {type: local, path: $WORK/dest}
targets:
  orders:
    engine: postgres
    dsn: postgres://idle@127.0.0.1:1/none
    schedule: "0 3 * * *"
    destinations: [local]
    verify: {schedule: "0 4 * * *"}
YAML
"$WORK/backproof" daemon -c "$WORK/c.yaml" 2>"$WORK/log" &
PID=$!
for _ in $(seq 50); do curl -fs "127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fs "127.0.0.1:$PORT/readyz" >/dev/null || die "daemon not ready: $(cat "$WORK/log")"
ticks() { awk '{ print $14 + $15 }' "/proc/$PID/stat"; }
t0=$(ticks)
for ((s = 0; s < SECONDS_IDLE; s += 15)); do
  curl -fs "127.0.0.1:$PORT/metrics" >/dev/null
  sleep $((SECONDS_IDLE - s < 15 ? SECONDS_IDLE - s : 15))
done
t1=$(ticks)
rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$PID/status")
hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$PID/status")
echo "idle daemon over ${SECONDS_IDLE}s: CPU $(awk -v t=$((t1 - t0)) -v hz="$HZ" -v s="$SECONDS_IDLE" 'BEGIN { printf "%.3f%% of one core (%.2f s)", 100 * t / hz / s, t / hz }'), RSS $(mib $((rss * 1024))) MiB (peak $(mib $((hwm * 1024))) MiB)"
