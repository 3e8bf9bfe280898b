#!/usr/bin/env bash
# The project's one test command, for CI and developers:
#   scripts/testenv.sh up -> go build cmd/backproof -> go test -race -count=1 -timeout 45m [args]
#   [-> scripts/fuzz.sh $BACKPROOF_FUZZ] -> scripts/testenv.sh down
#
#   scripts/test.sh                        # every package (./...)
#   scripts/test.sh -run Foo ./backup/     # extra args go to go test; ./... is added
#                                          # only when no package is named
# BACKPROOF_TEST_STRICT=1 turns skipped integration tests into failures (CI sets it).
# Exit code: go test's.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Each run gets its own servers (state dir), so concurrent runs on one machine
# do not stop each other's. Set BACKPROOF_TESTENV_DIR to reuse a fixed one.
own_state=
if [[ -z ${BACKPROOF_TESTENV_DIR:-} ]]; then
  BACKPROOF_TESTENV_DIR=$(mktemp -d /tmp/backproof-test.XXXXXX)
  own_state=1
fi
export BACKPROOF_TESTENV_DIR

# Always stop the servers, also on Ctrl-C or SIGTERM; keep their logs if the run failed.
# shellcheck disable=SC2317 # invoked by the EXIT trap
finish() {
  local rc=$?
  bash scripts/testenv.sh down || true
  if [[ -n $own_state ]]; then
    if ((rc == 0)); then rm -rf "$BACKPROOF_TESTENV_DIR"; else echo "test.sh: server logs in $BACKPROOF_TESTENV_DIR/logs" >&2; fi
  fi
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bash scripts/testenv.sh up
# shellcheck source=/dev/null
. "$BACKPROOF_TESTENV_DIR/env"

# Tests that run backproof as a separate process share one binary, built once.
export BACKPROOF_TEST_BIN=$BACKPROOF_TESTENV_DIR/bin/backproof
go build -o "$BACKPROOF_TEST_BIN" ./cmd/backproof

# The timeout is for a hung test, not a slow machine: the slowest package (cli)
# takes about 16 min on a loaded 2-core machine (README, Tests). Arguments may
# override it (-timeout X).
args=(-timeout "${BACKPROOF_TEST_TIMEOUT:-45m}" "$@")
has_pkg=
for a in "$@"; do
  case $a in
    . | ./* | ../* | github.com/backproof/backproof*) has_pkg=1 ;;
  esac
done
[[ -n $has_pkg ]] || args+=(./...)

# go test runs in its own process group, so that an interrupt of this script
# reaches go test and its test binaries at once (and nothing else).
setsid -w go test -race -count=1 "${args[@]}" &
gopid=$!
trap 'kill -INT -- "-$gopid" 2>/dev/null; wait "$gopid" || true; exit 130' INT
trap 'kill -INT -- "-$gopid" 2>/dev/null; wait "$gopid" || true; exit 143' TERM
rc=0
wait "$gopid" || rc=$?

# BACKPROOF_FUZZ=10s (CI sets it): then every fuzz target runs that long,
# beyond the seed corpora go test already ran.
if ((rc == 0)) && [[ -n ${BACKPROOF_FUZZ:-} ]]; then
  bash scripts/fuzz.sh "$BACKPROOF_FUZZ" || rc=$?
fi
exit "$rc"
