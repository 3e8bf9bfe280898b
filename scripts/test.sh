#!/usr/bin/env bash
# The project's one test command, for CI and developers:
#   scripts/testenv.sh up -> go test -race -count=1 [args] -> scripts/testenv.sh down
#
#   scripts/test.sh                        # every package (./...)
#   scripts/test.sh -run Foo ./backup/     # extra args go to go test; ./... is added
#                                          # only when no package is named
# BACKPROOF_TEST_STRICT=1 turns skipped integration tests into failures (CI sets it).
# Exit code: go test's.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Always stop the servers, also on Ctrl-C or SIGTERM.
trap 'bash scripts/testenv.sh down' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bash scripts/testenv.sh up
# shellcheck disable=SC1091
. "${BACKPROOF_TESTENV_DIR:-/tmp/backproof-testenv}/env"

args=("$@")
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
exit "$rc"
