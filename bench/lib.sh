# Shared by the bench scripts: messages, the loopback rule, waiting for a
# quiet machine, number formatting, the test servers. Sourced, not run.
# shellcheck disable=SC2034 # PG_BIN, DSN_PARAMS, STARTED_TESTENV are for the scripts that source this
# shellcheck shell=bash

say() { echo "bench: $*" >&2; }
die() { say "error: $*"; exit 1; }

# build_backproof DEST: the binary as scripts/image.sh ships it (static,
# stripped): the figures are those of what users run.
build_backproof() {
  say "building backproof"
  (cd "$REPO" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$1" ./cmd/backproof) || die "go build failed"
}
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

# testenv_up: start (or reuse) the test servers of $BACKPROOF_TESTENV_DIR and
# source their env. STARTED_TESTENV=1 when this run started them: testenv_down
# stops only those (and not with KEEP_TESTENV=1). Needs REPO.
testenv_up() {
  [[ -f $BACKPROOF_TESTENV_DIR/env ]] || STARTED_TESTENV=1
  say "test servers: scripts/testenv.sh up (BACKPROOF_TESTENV_DIR=$BACKPROOF_TESTENV_DIR)"
  "$REPO/scripts/testenv.sh" up
  # shellcheck source=/dev/null
  . "$BACKPROOF_TESTENV_DIR/env"
}

testenv_down() {
  if [[ -n ${STARTED_TESTENV:-} && -z ${KEEP_TESTENV:-} ]]; then
    "$REPO/scripts/testenv.sh" down || say "testenv down failed"
  fi
}

# pg_env: libpq variables for the test PostgreSQL, which must be on loopback.
# The DSN is postgres://USER:PASSWORD@HOST:PORT/DB?PARAMS (what testenv writes);
# sets PG_BIN and DSN_PARAMS too.
pg_env() {
  local re='^postgres(ql)?://([^:@/]+):([^@]*)@([^/?]+):([0-9]+)/([^?]*)(\?.*)?$'
  [[ $BACKPROOF_TEST_PG_DSN =~ $re ]] || die "cannot parse BACKPROOF_TEST_PG_DSN"
  PGUSER=${BASH_REMATCH[2]} PGPASSWORD=${BASH_REMATCH[3]} PGHOST=${BASH_REMATCH[4]} PGPORT=${BASH_REMATCH[5]}
  DSN_PARAMS=${BASH_REMATCH[7]} # used by the scripts that source this
  PG_BIN=$BACKPROOF_TEST_PG_BIN
  loopback "$PGHOST" || die "PostgreSQL host '$PGHOST' is not loopback: refusing"
  export PGUSER PGPASSWORD PGHOST PGPORT PGSSLMODE=disable PGCONNECT_TIMEOUT=10
}

# drop_dbs NAME...: drop databases of the test PostgreSQL, saying which could not be.
drop_dbs() {
  local db
  for db; do
    "$PG_BIN/psql" -XAtq -d postgres -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 ||
      say "could not drop database $db"
  done
}

# servers_up DIR: a private PostgreSQL (PG_BIN, default the test servers' 15)
# and MinIO (MINIO_BIN, default the one scripts/testenv.sh built) on
# 127.0.0.1 under DIR, nothing else: lighter than testenv_up for timing.
# Exports BACKPROOF_TEST_PG_DSN, BACKPROOF_TEST_PG_BIN and the S3 variables
# testenv_up would. servers_down DIR stops them.
servers_up() {
  local dir=$1 pass port i
  PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
  MINIO_BIN=${MINIO_BIN:-$(ls -t "${BACKPROOF_CACHE_DIR:-/var/cache/backproof}"/bin/minio-* 2>/dev/null | head -n 1)}
  [[ -x $PG_BIN/initdb && -x $MINIO_BIN ]] || die "need PostgreSQL in PG_BIN and MinIO in MINIO_BIN (scripts/testenv.sh up installs both)"
  mkdir -p "$dir/pg" "$dir/minio"
  pass=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
  (umask 077 && echo "$pass" >"$dir/pg/pwfile")
  if [[ $EUID -eq 0 ]]; then chown -R postgres: "$dir/pg"; chmod 755 "$dir"; fi
  as_postgres() { if [[ $EUID -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
  as_postgres "$PG_BIN/initdb" -D "$dir/pg/data" -U postgres --pwfile="$dir/pg/pwfile" --auth=scram-sha-256 \
    -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
  rm -f "$dir/pg/pwfile"
  printf "listen_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n" \
    "$dir/pg" >>"$dir/pg/data/postgresql.conf"
  printf 'local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n' >"$dir/pg/data/pg_hba.conf"
  # A random port may be taken: up to five tries, for each server.
  for ((i = 0; i < 5; i++)); do
    port=$((20000 + RANDOM % 12000))
    as_postgres "$PG_BIN/pg_ctl" -D "$dir/pg/data" -l "$dir/pg/log" -o "-p $port" -w -t 60 start >/dev/null && break
    grep -q 'could not bind' "$dir/pg/log" 2>/dev/null || i=5
  done
  ((i < 5)) || { tail -n 20 "$dir/pg/log" >&2; die "PostgreSQL did not start"; }
  export BACKPROOF_TEST_PG_DSN="postgres://postgres:$pass@127.0.0.1:$port/postgres?sslmode=disable" BACKPROOF_TEST_PG_BIN=$PG_BIN
  BACKPROOF_TEST_S3_ACCESS_KEY=bp$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
  BACKPROOF_TEST_S3_SECRET_KEY=$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')
  local try
  for ((try = 0; try < 5; try++)); do
    port=$((20000 + RANDOM % 12000))
    MINIO_ROOT_USER=$BACKPROOF_TEST_S3_ACCESS_KEY MINIO_ROOT_PASSWORD=$BACKPROOF_TEST_S3_SECRET_KEY MINIO_BROWSER=off MINIO_UPDATE=off \
      nohup "$MINIO_BIN" server "$dir/minio/data" --quiet --address "127.0.0.1:$port" \
      --console-address "127.0.0.1:$((port + 1))" >"$dir/minio/log" 2>&1 </dev/null &
    echo $! >"$dir/minio/pid"
    export BACKPROOF_TEST_S3_ENDPOINT=http://127.0.0.1:$port BACKPROOF_TEST_S3_ACCESS_KEY BACKPROOF_TEST_S3_SECRET_KEY
    for ((i = 0; i < 300; i++)); do
      curl -fsS --noproxy '*' -o /dev/null -m 2 "$BACKPROOF_TEST_S3_ENDPOINT/minio/health/ready" 2>/dev/null && return 0
      kill -0 "$(<"$dir/minio/pid")" 2>/dev/null || break # exited: the port was taken, or worse
      sleep 0.2
    done
    grep -q 'already in use' "$dir/minio/log" || break
  done
  tail -n 20 "$dir/minio/log" >&2
  die "MinIO did not start"
}

servers_down() {
  local dir=$1
  [[ ! -f $dir/pg/data/postmaster.pid ]] ||
    if [[ $EUID -eq 0 ]]; then runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$dir/pg/data" -m immediate stop >/dev/null 2>&1
    else "$PG_BIN/pg_ctl" -D "$dir/pg/data" -m immediate stop >/dev/null 2>&1; fi
  [[ ! -f $dir/minio/pid ]] || kill "$(<"$dir/minio/pid")" 2>/dev/null || true
}
