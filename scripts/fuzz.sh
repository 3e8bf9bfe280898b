#!/usr/bin/env bash
# Runs every fuzz target for a while (default 30s each), one after the
# other. Seed corpora already run in every `go test`; this explores beyond
# them (new inputs are minimized for 2s only, or minimizing a large seed eats
# the run). A failing input is written to the package's testdata/fuzz/ and
# becomes a seed once committed.
# Usage: scripts/fuzz.sh [FUZZTIME]   (FUZZ_PARALLEL: workers, default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-30s}
status=0
while read -r pkg dir; do
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
		echo "== $pkg $target ($fuzztime)"
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime 2s -parallel "${FUZZ_PARALLEL:-2}" "$pkg" || status=1
	done
done < <(go list -f '{{.ImportPath}} {{.Dir}}' ./...)
exit $status
