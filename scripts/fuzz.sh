#!/usr/bin/env bash
# Runs every fuzz target for a while (FUZZTIME, default 30s each), one after
# the other. Seed corpora run in every `go test`; this explores beyond them.
# Usage: scripts/fuzz.sh [FUZZTIME]
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-${FUZZTIME:-30s}}
status=0
# Each package's targets, found by name so new ones join without an edit here.
for pkg in $(go list ./... ); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
		echo "== $pkg $target ($fuzztime)"
		if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -parallel "${FUZZ_PARALLEL:-2}" "$pkg"; then
			status=1
		fi
	done
done
exit $status
