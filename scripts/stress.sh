#!/usr/bin/env bash
# The stress check to run before landing: from a fresh clone of HEAD, the CI
# entry point twice in a row while a parallel `go build -a` of this module
# (every dependency rebuilt from scratch, at normal priority) keeps every core
# busy. Prints each run's exit code and time; exit 0 only when both pass.
#
#   scripts/stress.sh [RUNS]      (default 2)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${1:-2}
WORK=$(mktemp -d /tmp/backproof-stress.XXXXXX)
say() { echo "stress: $*" >&2; }

git clone -q "$REPO" "$WORK/clone"
git -C "$WORK/clone" checkout -q "$(git -C "$REPO" rev-parse HEAD)"

# The load: rebuild the module and all its dependencies, over and over, with a
# build cache of its own that starts empty each time.
(
  cd "$WORK/clone"
  while :; do
    rm -rf "$WORK/load-cache"
    GOCACHE=$WORK/load-cache GOFLAGS=-buildvcs=false go build -a -o /dev/null ./... >/dev/null 2>&1 || true
  done
) &
load=$!
# The cleanup must not change the exit code (set -e holds in traps too).
trap 'kill "$load" 2>/dev/null || true; pkill -P "$load" 2>/dev/null || true; wait "$load" 2>/dev/null || true; rm -rf "$WORK"' EXIT

rc=0
for i in $(seq "$RUNS"); do
  start=$SECONDS
  r=0
  (cd "$WORK/clone" && CI=true bash .ci/run) >"$WORK/run$i.log" 2>&1 || r=$?
  say "run $i: exit $r after $((SECONDS - start)) s, load average $(cut -d' ' -f1-3 /proc/loadavg) (log: /tmp/backproof-stress-run$i.log)"
  cp "$WORK/run$i.log" "/tmp/backproof-stress-run$i.log"
  ((r == 0)) || rc=1
done
exit "$rc"
