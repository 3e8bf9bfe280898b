# Shared by the bench scripts: messages, the loopback rule, waiting for a
# quiet machine, number formatting. Sourced, not run.
# shellcheck shell=bash

say() { echo "bench: $*" >&2; }
die() { say "error: $*"; exit 1; }
loopback() { [[ $1 == 127.0.0.1 || $1 == localhost || $1 == ::1 || $1 == '[::1]' ]]; }

# busy_ticks: CPU ticks all CPUs spent busy since boot (user nice system irq softirq steal).
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
HZ=$(getconf CLK_TCK)
NCPU=$(nproc)
QUIET_WAIT=${QUIET_WAIT:-60}

# wait_quiet: other work on the machine (tests, builds) skews timings. Wait up
# to QUIET_WAIT seconds for a one-second window with the CPUs under 15% busy.
# Sets M_BUSY_BEFORE (percent of all CPUs busy in the last window).
wait_quiet() {
  local t0 t1 deadline=$((SECONDS + QUIET_WAIT)) warned=''
  while :; do
    t0=$(busy_ticks); sleep 1; t1=$(busy_ticks)
    M_BUSY_BEFORE=$(((t1 - t0) * 100 / (HZ * NCPU)))
    ((M_BUSY_BEFORE < 15)) && return 0
    if ((SECONDS >= deadline)); then
      say "  machine still ${M_BUSY_BEFORE}% busy after ${QUIET_WAIT}s: measuring anyway"
      return 0
    fi
    [[ -n $warned ]] || { say "  machine ${M_BUSY_BEFORE}% busy (other processes): waiting for quiet"; warned=1; }
  done
}

mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "-" && b > 0) printf "%.2f×", a / b; else print "-" }'; }
