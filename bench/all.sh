#!/usr/bin/env bash
# Every benchmark in turn, each with its defaults (bench/README.md; roughly 40 min on
# 2 vCPUs): compare.sh, backup.sh, verify.sh, restore.sh, idle.sh. Each prints its markdown report
# on stdout and starts and stops its own test servers. Stops at the first failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
for b in compare backup verify restore idle; do
  echo "## bench/$b.sh" && bash "./$b.sh"
done
