#!/usr/bin/env bash
# Test servers for backproof's integration tests, all on 127.0.0.1:
#   PostgreSQL 15, MinIO and FerretDB (MongoDB's wire protocol on SQLite) (private to
#   this run, random ports and passwords), Debian's redis-server (tests start their
#   own servers with it, and Redis 8 and Valkey 8 and 9 from the sandbox images),
#   PostgreSQL 17 and 18, MariaDB 10.11 and 11.8 and MySQL 9.7 (containers of the
#   sandbox images, binlog on, private to this run), plus a Docker engine for
#   testcontainers (left running by `down`) and the sandbox images
#   (scripts/sandbox-images.sh, which also builds the FerretDB binary), and a
#   single-node Kubernetes cluster (scripts/k8s.sh; its binaries build once, in
#   the background while the rest is provisioned).
#
#   scripts/testenv.sh up     install what is missing, start everything, write $STATE/env
#   scripts/testenv.sh down   stop the servers `up` started and delete their data
#
# Then `. /tmp/backproof-testenv/env` exports BACKPROOF_TEST_* for `go test`.
# Quiet unless something fails; server logs stay in $STATE/logs.
# Overrides: BACKPROOF_TESTENV_DIR (state dir), BACKPROOF_CACHE_DIR (build cache).
set -euo pipefail

STATE=${BACKPROOF_TESTENV_DIR:-/tmp/backproof-testenv}
CACHE=${BACKPROOF_CACHE_DIR:-/var/cache/backproof}
LOGS=$STATE/logs
ENV_FILE=$STATE/env
PG_MAJOR=15
PG_BIN=/usr/lib/postgresql/$PG_MAJOR/bin
PG_DIR=$STATE/pg
MINIO_DIR=$STATE/minio
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
MINIO_PKG=github.com/minio/minio@$MINIO_VERSION
FERRETDB_VERSION=v1.24.0 # as in scripts/sandbox-images.sh, which builds it
MONGO_DIR=$STATE/ferretdb
SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SANDBOX_PREFIX=backproof-sandbox
PG_IMAGE=$SANDBOX_PREFIX/postgres:$PG_MAJOR
REDIS_IMAGE=$SANDBOX_PREFIX/redis:7
REDIS_SERVER=/usr/bin/redis-server
MONGO_IMAGE=$SANDBOX_PREFIX/ferretdb:1.24
MYSQL_DIR=$STATE/mysql
PGC_DIR=$STATE/pg-containers
K8S_DIR=$STATE/k8s
HELM_VERSION=v4.3.2 # the chart's tests (deploy/helm)
# major, env var: the PostgreSQL servers run as containers of the sandbox images
# (internal/testenv.PostgresServers; 15 is the host's, above).
PG_SERVERS=(
  "17 BACKPROOF_TEST_PG17_DSN"
  "18 BACKPROOF_TEST_PG18_DSN"
)
# name, image, env var: the MySQL/MariaDB test servers (internal/testenv.MySQLServers).
# Each runs twice: the twin's DSN is in the env var with _B appended (the engine
# conformance suite restores into a database of the same name on another server).
MYSQL_SERVERS=(
  "mariadb-10.11 $SANDBOX_PREFIX/mariadb:10.11 BACKPROOF_TEST_MARIADB_DSN"
  "mariadb-11.8 $SANDBOX_PREFIX/mariadb:11.8 BACKPROOF_TEST_MARIADB11_DSN"
  "mysql-9.7 $SANDBOX_PREFIX/mysql:9.7 BACKPROOF_TEST_MYSQL_DSN"
)

say() { echo "testenv: $*" >&2; }
die() { say "$*"; exit 1; }


# logged, apt_install, rand_hex, free_port, closefds
source "$SCRIPTS/lib.sh"

# as_pg CMD...: run as the unprivileged postgres user (initdb refuses root).
as_pg() {
  if [[ $EUID -eq 0 ]]; then (cd "$PG_DIR" && runuser -u postgres -- "$@"); else "$@"; fi
}

# ---------------------------------------------------------------- provisioning

install_packages() {
  local missing=()
  [[ -x $PG_BIN/postgres ]] || missing+=(postgresql-15)
  [[ -x $PG_BIN/pg_dump ]] && command -v psql >/dev/null || missing+=(postgresql-client)
  command -v zstd >/dev/null || missing+=(zstd)
  [[ -x $REDIS_SERVER ]] || missing+=(redis-server)
  [[ -x /usr/bin/time ]] || missing+=(time)
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v curl >/dev/null || missing+=(curl)
  command -v promtool >/dev/null || missing+=(prometheus)        # alert rule tests
  command -v chromium >/dev/null || missing+=(chromium)          # status page test
  ((${#missing[@]})) || return 0
  apt_install "$LOGS/apt.log" "${missing[@]}"
}

# MinIO is a ~4 min build: cache the binary under $CACHE/bin, named with its version.
MINIO_BIN=''
ensure_minio() {
  local bin=$CACHE/bin/minio-$MINIO_VERSION lead=$CACHE/build-minio/minio
  MINIO_BIN=$bin
  [[ -x $bin ]] && return 0
  mkdir -p "$CACHE/bin"
  # Adopt the lead's one-off background build (same version) when it finished.
  if [[ -x $lead ]] && "$lead" --version >/dev/null 2>&1; then
    ln -f "$lead" "$bin.tmp" 2>/dev/null || cp "$lead" "$bin.tmp"
    mv -f "$bin.tmp" "$bin"
    return 0
  fi
  say "building MinIO $MINIO_VERSION, about 4 min (log: $LOGS/minio-build.log)"
  local tmp
  tmp=$(mktemp -d "$CACHE/bin/.build.XXXXXX")
  logged "$LOGS/minio-build.log" env GOBIN="$tmp" GOFLAGS=-buildvcs=false go install "$MINIO_PKG"
  mv -f "$tmp/minio" "$bin"
  rm -rf "$tmp"
}

# dockerd is shared and outlives `down` (scripts/dockerd.sh); closefds keeps it
# off this script's pipes.
ensure_dockerd() { (closefds bash "$SCRIPTS/dockerd.sh"); }

# Restore sandboxes' images (no registry reachable): the first build takes about a
# minute, later runs find them up to date in a fraction of a second.
ensure_sandbox_images() {
  BACKPROOF_CACHE_DIR=$CACHE bash "$SCRIPTS/sandbox-images.sh" \
    --prefix "$SANDBOX_PREFIX" --log "$LOGS/sandbox-images.log"
}

# helm, built once from the Go module proxy (about 6.5 CPU-minutes).
HELM_BIN=''
ensure_helm() {
  HELM_BIN=$CACHE/bin/helm-$HELM_VERSION
  [[ -x $HELM_BIN ]] && return 0
  mkdir -p "$CACHE/bin"
  local tmp
  tmp=$(mktemp -d "$CACHE/bin/.build.XXXXXX")
  logged "$LOGS/helm-build.log" env GOBIN="$tmp" GOFLAGS=-buildvcs=false go install "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
  mv -f "$tmp/helm" "$HELM_BIN"
  rm -rf "$tmp"
}

# The slow one-off builds, run in the background while the rest is provisioned.
background_builds() {
  local rc=0
  k8s build || rc=1
  ensure_helm || rc=1
  return "$rc"
}

# k8s ARGS...: scripts/k8s.sh for this run's cluster.
k8s() {
  BACKPROOF_K8S_DIR=$K8S_DIR BACKPROOF_K8S_LOGS=$LOGS/k8s BACKPROOF_CACHE_DIR=$CACHE BACKPROOF_SANDBOX_PREFIX=$SANDBOX_PREFIX \
    BACKPROOF_K8S_IMAGES="$PG_IMAGE $REDIS_IMAGE $MONGO_IMAGE" bash "$SCRIPTS/k8s.sh" "$@"
}

# ---------------------------------------------------------------- servers

PG_PORT='' PG_PASS=''
start_postgres() {
  id -u postgres >/dev/null 2>&1 ||
    useradd --system --user-group --no-create-home --home-dir /var/lib/postgresql --shell /usr/sbin/nologin postgres
  rm -rf "$PG_DIR"
  mkdir -p "$PG_DIR"
  PG_PASS=$(rand_hex 16)
  (umask 077 && echo "$PG_PASS" >"$PG_DIR/pwfile")
  : >"$LOGS/postgres.log"
  [[ $EUID -ne 0 ]] || chown -R postgres: "$PG_DIR" "$LOGS/postgres.log"
  logged "$LOGS/postgres.log" as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres \
    --pwfile="$PG_DIR/pwfile" --auth=scram-sha-256 -E UTF8 --locale=C.UTF-8
  rm -f "$PG_DIR/pwfile"

  cat >>"$PG_DIR/data/postgresql.conf" <<EOF

# backproof test server: loopback only, fast and unsafe
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_DIR'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
  cat >"$PG_DIR/data/pg_hba.conf" <<EOF
local all all scram-sha-256
host  all all 127.0.0.1/32 scram-sha-256
host  all all ::1/128 scram-sha-256
EOF

  # The port is chosen at start (-p); retry if another process grabs it first.
  for _ in 1 2 3; do
    PG_PORT=$(free_port)
    # shellcheck disable=SC2094 # pg_ctl and the server both append to the log
    if (closefds as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$LOGS/postgres.log" -o "-p $PG_PORT" -w -t 60 start) >>"$LOGS/postgres.log" 2>&1; then
      # Ready: accept a password login over TCP.
      for _ in {1..50}; do
        PGPASSWORD=$PG_PASS "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -XAtqc 'SELECT 1' >/dev/null 2>&1 && return 0
        sleep 0.2
      done
      break
    fi
    grep -q 'already in use' "$LOGS/postgres.log" || break
  done
  tail -n 40 "$LOGS/postgres.log" >&2
  die "PostgreSQL did not start (log: $LOGS/postgres.log)"
}

S3_PORT='' S3_USER='' S3_PASS=''
start_minio() {
  rm -rf "$MINIO_DIR"
  mkdir -p "$MINIO_DIR"
  S3_USER=bp$(rand_hex 8)
  S3_PASS=$(rand_hex 20)
  local console pid
  for _ in 1 2 3; do
    S3_PORT=$(free_port) console=$(free_port)
    : >"$LOGS/minio.log"
    # Console bound to loopback too (MINIO_BROWSER=off disables it anyway).
    closefds env MINIO_ROOT_USER="$S3_USER" MINIO_ROOT_PASSWORD="$S3_PASS" MINIO_BROWSER=off MINIO_UPDATE=off \
      nohup "$MINIO_BIN" server "$MINIO_DIR/data" --quiet --certs-dir "$MINIO_DIR/certs" \
      --address "127.0.0.1:$S3_PORT" --console-address "127.0.0.1:$console" \
      >>"$LOGS/minio.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$MINIO_DIR/pid"
    for _ in {1..300}; do
      curl -fsS --noproxy '*' -o /dev/null -m 2 "http://127.0.0.1:$S3_PORT/minio/health/ready" 2>/dev/null && return 0
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -9 "$pid" 2>/dev/null || true
    grep -q 'already in use' "$LOGS/minio.log" || break
  done
  tail -n 40 "$LOGS/minio.log" >&2
  die "MinIO did not start (log: $LOGS/minio.log)"
}

# FerretDB with authentication (SCRAM) and a root user with a random password; the
# password reaches it through its environment only.
MONGO_PORT='' MONGO_PASS='' FERRETDB_BIN=''
start_ferretdb() {
  rm -rf "$MONGO_DIR"
  mkdir -p "$MONGO_DIR/data"
  MONGO_PASS=$(rand_hex 16)
  local pid
  for _ in 1 2 3; do
    MONGO_PORT=$(free_port)
    : >"$LOGS/ferretdb.log"
    closefds env FERRETDB_SETUP_PASSWORD="$MONGO_PASS" nohup "$FERRETDB_BIN" \
      --handler=sqlite --sqlite-url="file:$MONGO_DIR/data/" --state-dir="$MONGO_DIR" \
      --listen-addr="127.0.0.1:$MONGO_PORT" --debug-addr=- --telemetry=disable --log-level=warn \
      --test-enable-new-auth --setup-database=admin --setup-username=root \
      >>"$LOGS/ferretdb.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$MONGO_DIR/pid"
    for _ in {1..100}; do
      if (exec 3<>"/dev/tcp/127.0.0.1/$MONGO_PORT") 2>/dev/null; then return 0; fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    grep -q 'address already in use' "$LOGS/ferretdb.log" || break
  done
  tail -n 40 "$LOGS/ferretdb.log" >&2
  die "FerretDB did not start (log: $LOGS/ferretdb.log)"
}

# The MySQL/MariaDB servers run as containers of the sandbox images (one
# debootstrapped root per Debian suite), all started at once, each with a random
# root password that reaches docker through its environment only, and a binlog
# (with GTIDs on MySQL) so dumps record a position.
MYSQL_ENV=''
start_mysql() {
  rm -rf "$MYSQL_DIR"
  mkdir -p "$MYSQL_DIR"
  local spec name image var port pass cname flavor_args
  local -a names=()
  local twin
  for spec in "${MYSQL_SERVERS[@]}" "${MYSQL_SERVERS[@]/%/ _B}"; do
    read -r name image var twin <<<"$spec"
    var+=${twin:-}
    port=$(free_port) pass=$(rand_hex 16) cname=backproof-testenv-$name-$(rand_hex 4)
    flavor_args=(--log-bin=binlog --server-id=1)
    [[ $name != mysql-* ]] || flavor_args+=(--gtid-mode=ON --enforce-gtid-consistency=ON)
    if ! MARIADB_ROOT_PASSWORD=$pass MYSQL_ROOT_PASSWORD=$pass docker run -d --name "$cname" \
      --label org.backproof.testenv="$STATE" -e MARIADB_ROOT_PASSWORD -e MYSQL_ROOT_PASSWORD \
      -p "127.0.0.1:$port:3306" "$image" "${flavor_args[@]}" >>"$LOGS/mysql.log" 2>&1; then
      tail -n 20 "$LOGS/mysql.log" >&2
      die "could not start $name from $image (log: $LOGS/mysql.log)"
    fi
    echo "$cname" >>"$MYSQL_DIR/containers"
    names+=("$cname")
    MYSQL_ENV+="export $var='mysql://root:$pass@127.0.0.1:$port/'"$'\n'
  done
  # Ready: the real server logs its TCP port (the init step logs none).
  wait_logged 'port: 3306  ' 1 480 "${names[@]}"
}

# wait_logged PATTERN COUNT TRIES CONTAINER...: wait until each container has logged a
# line matching PATTERN COUNT times, polling every 0.25 s at most TRIES times; die with
# its log when it stops or runs out of tries.
wait_logged() {
  local pattern=$1 count=$2 tries=$3 c ok i
  shift 3
  for c; do
    ok=
    for ((i = 0; i < tries; i++)); do
      if (($(docker logs "$c" 2>&1 | grep -c -- "$pattern") >= count)); then ok=1; break; fi
      [[ $(docker inspect -f '{{.State.Running}}' "$c" 2>/dev/null) == true ]] || break
      sleep 0.25
    done
    if [[ -z $ok ]]; then
      docker logs "$c" >"$LOGS/$c.log" 2>&1 || true
      tail -n 40 "$LOGS/$c.log" >&2
      die "$c did not become ready (log: $LOGS/$c.log)"
    fi
  done
}

# PostgreSQL 17 and 18: containers of the sandbox images (Debian trixie's and sid's
# packages), started together, each with a random password given to docker through
# its environment only. Tests make their own databases on them.
PGC_ENV=''
start_pg_containers() {
  rm -rf "$PGC_DIR"
  mkdir -p "$PGC_DIR"
  local spec major var port pass cname
  local -a names=()
  for spec in "${PG_SERVERS[@]}"; do
    read -r major var <<<"$spec"
    port=$(free_port) pass=$(rand_hex 16) cname=backproof-testenv-pg$major-$(rand_hex 4)
    if ! POSTGRES_PASSWORD=$pass docker run -d --name "$cname" \
      --label org.backproof.testenv="$STATE" -e POSTGRES_PASSWORD \
      -p "127.0.0.1:$port:5432" "$SANDBOX_PREFIX/postgres:$major" \
      -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 \
      >>"$LOGS/pg-containers.log" 2>&1; then
      tail -n 20 "$LOGS/pg-containers.log" >&2
      die "could not start PostgreSQL $major (log: $LOGS/pg-containers.log)"
    fi
    echo "$cname" >>"$PGC_DIR/containers"
    names+=("$cname")
    PGC_ENV+="export $var='postgres://postgres:$pass@127.0.0.1:$port/postgres?sslmode=disable'"$'\n'
  done
  # Ready: the real server's ready line (the init server logs one before it).
  wait_logged 'database system is ready to accept connections' 2 240 "${names[@]}"
}

write_env() {
  (
    umask 077
    cat >"$ENV_FILE.tmp" <<EOF
export BACKPROOF_TEST_PG_DSN='postgres://postgres:$PG_PASS@127.0.0.1:$PG_PORT/postgres?sslmode=disable'
export BACKPROOF_TEST_PG_BIN='$PG_BIN'
export BACKPROOF_TEST_S3_ENDPOINT='http://127.0.0.1:$S3_PORT'
export BACKPROOF_TEST_S3_ACCESS_KEY='$S3_USER'
export BACKPROOF_TEST_S3_SECRET_KEY='$S3_PASS'
export BACKPROOF_TEST_MINIO_BIN='$MINIO_BIN'
export BACKPROOF_TEST_PG_IMAGE='$PG_IMAGE'
export BACKPROOF_TEST_REDIS_IMAGE='$REDIS_IMAGE'
export BACKPROOF_TEST_REDIS_SERVER='$REDIS_SERVER'
export BACKPROOF_TEST_PROMTOOL='$(command -v promtool)'
export BACKPROOF_TEST_CHROMIUM='$(command -v chromium)'
export BACKPROOF_TEST_MONGO_URI='mongodb://root:$MONGO_PASS@127.0.0.1:$MONGO_PORT/?authSource=admin'
export BACKPROOF_TEST_MONGO_IMAGE='$MONGO_IMAGE'
export BACKPROOF_TEST_FERRETDB_BIN='$FERRETDB_BIN'
${PGC_ENV}${MYSQL_ENV}export BACKPROOF_TEST_REDIS8_IMAGE='$SANDBOX_PREFIX/redis:8'
export BACKPROOF_TEST_VALKEY8_IMAGE='$SANDBOX_PREFIX/valkey:8'
export BACKPROOF_TEST_VALKEY9_IMAGE='$SANDBOX_PREFIX/valkey:9'
export BACKPROOF_TEST_KUBECONFIG='$K8S_DIR/kubeconfig'
export BACKPROOF_TEST_HELM='$HELM_BIN'
export BACKPROOF_TEST_MARIADB_IMAGE='$SANDBOX_PREFIX/mariadb:{version}'
export BACKPROOF_TEST_MYSQL_IMAGE='$SANDBOX_PREFIX/mysql:{version}'
export TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1
export TESTCONTAINERS_RYUK_DISABLED=true
export NO_PROXY='${NO_PROXY:+$NO_PROXY,}10.244.0.0/16,10.96.0.0/24' no_proxy='${no_proxy:+$no_proxy,}10.244.0.0/16,10.96.0.0/24'
EOF
  )
  mv -f "$ENV_FILE.tmp" "$ENV_FILE" # written last: its presence means "up"
}

# Are the servers of an earlier `up` still answering with the env file's credentials?
still_up() {
  [[ -f $ENV_FILE ]] || return 1
  (
    # shellcheck source=/dev/null
    . "$ENV_FILE"
    [[ $BACKPROOF_TEST_MINIO_BIN == "$MINIO_BIN" ]] &&
      [[ ${BACKPROOF_TEST_PG_IMAGE:-} == "$PG_IMAGE" && ${BACKPROOF_TEST_REDIS_IMAGE:-} == "$REDIS_IMAGE" ]] &&
      [[ ${BACKPROOF_TEST_REDIS_SERVER:-} == "$REDIS_SERVER" ]] &&
      [[ -n ${BACKPROOF_TEST_PROMTOOL:-} && -n ${BACKPROOF_TEST_CHROMIUM:-} ]] &&
      [[ ${BACKPROOF_TEST_MONGO_IMAGE:-} == "$MONGO_IMAGE" && ${BACKPROOF_TEST_FERRETDB_BIN:-} == "$FERRETDB_BIN" ]] &&
      [[ -f $MONGO_DIR/pid ]] && grep -qF "$MONGO_DIR" "/proc/$(<"$MONGO_DIR/pid")/cmdline" 2>/dev/null &&
      [[ -n ${BACKPROOF_TEST_MYSQL_DSN:-} && -f $MYSQL_DIR/containers ]] &&
      # shellcheck disable=SC2046 # one name per line
      [[ $(docker inspect -f '{{.State.Running}}' $(<"$MYSQL_DIR/containers") 2>/dev/null | grep -c true) == $((2 * ${#MYSQL_SERVERS[@]})) ]] &&
      [[ -n ${BACKPROOF_TEST_PG18_DSN:-} && -n ${BACKPROOF_TEST_VALKEY9_IMAGE:-} && -f $PGC_DIR/containers ]] &&
      # shellcheck disable=SC2046 # one name per line
      [[ $(docker inspect -f '{{.State.Running}}' $(<"$PGC_DIR/containers") 2>/dev/null | grep -c true) == "${#PG_SERVERS[@]}" ]] &&
      [[ ${BACKPROOF_TEST_KUBECONFIG:-} == "$K8S_DIR/kubeconfig" && ${BACKPROOF_TEST_HELM:-} == "$HELM_BIN" ]] && k8s check &&
      "$PG_BIN/psql" "$BACKPROOF_TEST_PG_DSN" -XAtqc 'SELECT 1' >/dev/null 2>&1 &&
      curl -fsS --noproxy '*' -o /dev/null -m 2 "$BACKPROOF_TEST_S3_ENDPOINT/minio/health/ready"
  )
}

# ---------------------------------------------------------------- commands

up() {
  mkdir -p "$LOGS"
  chmod 755 "$STATE" # the postgres user must reach $PG_DIR
  mkdir -p "$CACHE" 2>/dev/null && [[ -w $CACHE ]] || CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/backproof
  mkdir -p "$CACHE"
  # The cluster's binaries (about 30 CPU-minutes cold, then cached) and helm
  # build alongside the rest of the provisioning.
  (closefds background_builds) >>"$LOGS/k8s-build.log" 2>&1 </dev/null &
  local k8s_build=$!
  (
    flock 9 # one installer/builder/dockerd starter at a time on this machine
    install_packages
    ensure_minio
    ensure_dockerd
    ensure_sandbox_images
  ) 9>"$CACHE/.lock"
  MINIO_BIN=$CACHE/bin/minio-$MINIO_VERSION
  FERRETDB_BIN=$CACHE/bin/ferretdb-$FERRETDB_VERSION

  wait "$k8s_build" || true # a failed build is retried, and reported, below
  ensure_helm
  still_up && return 0
  down # leftovers of a half-started or dead run
  # The cluster starts while the servers do (its output in $LOGS/k8s.log).
  (closefds k8s up) >>"$LOGS/k8s.log" 2>&1 </dev/null &
  local k8s_up=$!
  start_postgres
  start_minio
  start_ferretdb
  start_mysql
  start_pg_containers
  if ! wait "$k8s_up"; then
    tail -n 40 "$LOGS/k8s.log" >&2
    die "the Kubernetes cluster did not start (log: $LOGS/k8s.log)"
  fi
  write_env
}

down() {
  rm -f "$ENV_FILE"
  if [[ -f $PG_DIR/data/postmaster.pid ]]; then
    local pgpid
    pgpid=$(head -n 1 "$PG_DIR/data/postmaster.pid")
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w -t 30 stop >/dev/null 2>&1 ||
      { grep -qF "$PG_DIR/data" "/proc/$pgpid/cmdline" 2>/dev/null && kill -9 "$pgpid"; } || true
  fi
  if [[ -f $MINIO_DIR/pid ]]; then
    local pid
    pid=$(<"$MINIO_DIR/pid")
    # Only kill it if that pid is still our MinIO (pids get reused).
    if grep -qF "$MINIO_DIR/data" "/proc/$pid/cmdline" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in {1..50}; do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  fi
  if [[ -f $MONGO_DIR/pid ]]; then
    local fpid
    fpid=$(<"$MONGO_DIR/pid")
    if grep -qF "$MONGO_DIR" "/proc/$fpid/cmdline" 2>/dev/null; then
      kill "$fpid" 2>/dev/null || true
      for _ in {1..50}; do kill -0 "$fpid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$fpid" 2>/dev/null || true
    fi
  fi
  # This state dir's MySQL/MariaDB containers, also those of a run that died.
  local ids
  ids=$(docker ps -aq --filter "label=org.backproof.testenv=$STATE" 2>/dev/null) || true
  # shellcheck disable=SC2086 # one id per line
  [[ -z $ids ]] || docker rm -f -v $ids >/dev/null 2>&1 || true
  rm -rf "$PG_DIR" "$MINIO_DIR" "$MONGO_DIR" "$MYSQL_DIR" "$PGC_DIR"
  k8s down || true
}

case ${1:-} in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
