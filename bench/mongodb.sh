#!/usr/bin/env bash
# MongoDB dump and restore throughput, documents/s and MiB/s of archive, with the
# Go benchmarks of engine/mongodb/bench_test.go against the FerretDB test server:
#
#   bench/mongodb.sh                     # 50,000 orders (70,000 documents), 3 rounds
#   ORDERS=200000 ROUNDS=5 bench/mongodb.sh
#
#   Dump        Engine.Dump of the seeded database (internal/sample) to a counting
#               writer: listing, the archive framing and CRC, the driver's cursor.
#   FloorFind   the same documents read with bare finds: what the server serves at
#               best, so Dump / FloorFind is the dump's own cost.
#   Restore     Engine.RestoreInto a fresh database from the archive file: create,
#               inserts in batches, indexes.
#
# The three share one seeded database, in one process that starts after waiting (up
# to QUIET_WAIT seconds, default 60) for the machine to be idle: other work on 2 CPUs
# skews the figures.
# FerretDB on SQLite is much slower than mongod; the figures measure backproof on
# it, and are the floor of what a real server gives.
# Servers: scripts/testenv.sh in BACKPROOF_TESTENV_DIR (default /tmp/bp-bench),
# started if needed and then stopped (KEEP_TESTENV=1 keeps it). 127.0.0.1 only.
set -euo pipefail
export LC_ALL=C

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"
ORDERS=${ORDERS:-50000}
ROUNDS=${ROUNDS:-3}
export BACKPROOF_TESTENV_DIR=${BACKPROOF_TESTENV_DIR:-/tmp/bp-bench}

STARTED_TESTENV=''
cleanup() {
  local rc=$?
  testenv_down
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

testenv_up

cd "$REPO"
say "building the benchmark"
go test -c -o "$BACKPROOF_TESTENV_DIR/mongodb.test" ./engine/mongodb/
wait_quiet
say "$ORDERS orders, $ROUNDS rounds of each benchmark"
out=$(BACKPROOF_BENCH_ORDERS=$ORDERS "$BACKPROOF_TESTENV_DIR/mongodb.test" \
  -test.run '^$' -test.bench '^Benchmark(Dump|FloorFind|Restore)$' -test.benchtime "${ROUNDS}x")
grep -q '^BenchmarkRestore' <<<"$out" || die "no result: $out"
echo "machine ${M_BUSY_BEFORE}% busy before the run"
echo
echo "| benchmark | documents/s | MiB/s (archive) | archive MiB |"
echo "|---|---:|---:|---:|"
# BenchmarkX-2  N  ns/op  V MiB  V MiB/s  V docs/s
awk '/^Benchmark/ {
  for (i = 2; i < NF; i++) { v[$(i + 1)] = $i }
  printf "| %s | %.0f | %.2f | %.1f |\n", $1, v["docs/s"], v["MiB/s"], v["MiB"]
}' <<<"$out"
