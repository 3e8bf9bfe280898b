#!/usr/bin/env bash
# Local stand-ins for the official postgres:15, redis:7, mongo, mariadb and mysql images,
# so restore sandboxes (and the MySQL/MariaDB test servers) work where no image registry
# is reachable:
#   debootstrap bookworm (minbase + postgresql-15, redis-server), bookworm again
#   (mariadb-server 10.11), trixie (mariadb-server 11.8) and sid (mysql-server 9.7)
#     -> docker import as PREFIX/base:<root> (bookworm, mariadb-bookworm, trixie, sid)
#     -> docker build sandbox/images/<dir> FROM it -> PREFIX/postgres:15, PREFIX/redis:7,
#        PREFIX/mariadb:<version> (and :<major.minor>), PREFIX/mysql:<version> (and :<major.minor>),
#        <version> being the packaged server's, e.g. 10.11.19
#   FerretDB v1.24.0 built from the Go module proxy (static, cached in $CACHE/bin)
#     -> docker build sandbox/images/ferretdb FROM scratch -> PREFIX/ferretdb:1.24
#
#   scripts/sandbox-images.sh [--prefix NAME] [--log FILE] [--force] [ENGINE]...
#   ENGINE: postgres redis ferretdb mariadb-10.11 mariadb-11.8 mysql-9.7
#           postgres-17 postgres-18 redis-8 valkey-8 valkey-9
#
# No engine named: all of them. --prefix: image name prefix (default backproof-sandbox).
# --log FILE: build output goes to FILE instead of stderr (only progress lines and
# failures are shown). --force: debootstrap and build again even if up to date.
#
# Idempotent: an image is kept when its label org.backproof.sandbox.hash matches its
# recipe (base: the rootfs recipe in this script; engines: base image id + the files in
# sandbox/images/<engine>; ferretdb: its binary, the Go version and its directory's files). The rootfs tarball is cached in $BACKPROOF_CACHE_DIR/sandbox
# (default /var/cache/backproof), so a wiped docker state only needs `docker import`.
# Needs a running docker engine, and root for debootstrap (only without a cached tarball).
# Override the Debian mirror with BACKPROOF_DEBIAN_MIRROR (default: bookworm's in /etc/apt,
# which serves trixie and sid too).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IMAGES_DIR=$REPO/sandbox/images
# Debootstrapped roots: name -> suite and packages. setpriv (entrypoints) is in
# util-linux, which minbase has. MariaDB 10.11 has a bookworm root of its own, so the
# PostgreSQL/Redis base (and the backproof image built FROM it) stays as it was.
# PostgreSQL 17/18, Redis 8 and Valkey 8/9 have roots of their own too (trixie-pg,
# sid-pg), so the MariaDB/MySQL roots of those suites stay as they were.
declare -A ROOT_SUITE=([bookworm]=bookworm [mariadb-bookworm]=bookworm [trixie]=trixie [sid]=sid
  [trixie-pg]=trixie [sid-pg]=sid)
declare -A INCLUDES=(
  [bookworm]=postgresql-15,redis-server
  [mariadb-bookworm]=mariadb-server
  [trixie]=mariadb-server
  [sid]=mysql-server
  [trixie-pg]=postgresql-17,redis-server,valkey-server
  [sid-pg]=postgresql-18,valkey-server,ca-certificates,curl
)
# root -> the cleanup of what its packages' scripts made (part of its hash).
declare -A ROOT_CLEAN=([mariadb-bookworm]=clean_mysql_rootfs [trixie]=clean_mysql_rootfs
  [sid]=clean_mysql_rootfs [trixie-pg]=clean_server_rootfs [sid-pg]=clean_server_rootfs)
LABEL_KEY=org.backproof.sandbox.hash
IMAGE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# engine -> image tag ("" for the packaged server's version), suite, image directory,
# build arguments, package.
declare -A TAGS=([postgres]=15 [redis]=7 [ferretdb]=1.24 [mariadb-10.11]='' [mariadb-11.8]='' [mysql-9.7]=''
  [postgres-17]=17 [postgres-18]=18 [redis-8]=8 [valkey-8]=8 [valkey-9]=9)
declare -A ROOTS=([postgres]=bookworm [redis]=bookworm [mariadb-10.11]=mariadb-bookworm [mariadb-11.8]=trixie [mysql-9.7]=sid
  [postgres-17]=trixie-pg [postgres-18]=sid-pg [redis-8]=trixie-pg [valkey-8]=trixie-pg [valkey-9]=sid-pg)
declare -A DIRS=([postgres]=postgres [redis]=redis [mariadb-10.11]=mysql [mariadb-11.8]=mysql [mysql-9.7]=mysql
  [postgres-17]=postgres [postgres-18]=postgres [redis-8]=redis [valkey-8]=redis [valkey-9]=redis)
declare -A BUILD_ARGS=([postgres-17]=PG_MAJOR=17 [postgres-18]=PG_MAJOR=18 [valkey-8]=SERVER=valkey [valkey-9]=SERVER=valkey)
declare -A PACKAGES=([mariadb-10.11]=mariadb-server-core [mariadb-11.8]=mariadb-server-core [mysql-9.7]=mysql-server-core)
FERRETDB_VERSION=v1.24.0

PREFIX=backproof-sandbox
LOG=''
FORCE=''
ENGINES=()

say() { echo "sandbox-images: $*" >&2; }
die() { say "$*"; exit 1; }
# note: detail that belongs in the build log, not on the terminal of a --log run.
note() { if [[ -n $LOG ]]; then echo "sandbox-images: $*" >>"$LOG"; else say "$*"; fi; }

# quietly CMD...: CMD's output goes to the --log file (or stderr); on failure show its tail.
quietly() {
  if [[ -z $LOG ]]; then
    "$@" >&2 || die "failed: $*"
    return 0
  fi
  if ! "$@" >>"$LOG" 2>&1; then
    say "failed: $* (log: $LOG)"
    tail -n 40 "$LOG" >&2
    exit 1
  fi
}

usage() {
  sed -n '14,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

while (($#)); do
  case $1 in
    --prefix) (($# >= 2)) || usage; PREFIX=$2; shift 2 ;;
    --prefix=*) PREFIX=${1#*=}; shift ;;
    --log) (($# >= 2)) || usage; LOG=$2; shift 2 ;;
    --log=*) LOG=${1#*=}; shift ;;
    --force) FORCE=1; shift ;;
    -h | --help) usage ;;
    -*) say "unknown option $1"; usage ;;
    *)
      [[ -n ${TAGS[$1]+set} ]] || die "unknown engine '$1' (known: ${!TAGS[*]})"
      ENGINES+=("$1"); shift ;;
  esac
done
((${#ENGINES[@]})) || ENGINES=(postgres redis ferretdb mariadb-10.11 mariadb-11.8 mysql-9.7
  postgres-17 postgres-18 redis-8 valkey-8 valkey-9)
[[ $PREFIX =~ ^[a-z0-9]+([._/-][a-z0-9]+)*$ ]] || die "--prefix '$PREFIX' is not a valid image name"
if [[ -n $LOG ]]; then
  { mkdir -p "$(dirname "$LOG")" && : >>"$LOG"; } || die "cannot write --log $LOG"
fi

CACHE=${BACKPROOF_CACHE_DIR:-/var/cache/backproof}
mkdir -p "$CACHE/sandbox" 2>/dev/null && [[ -w $CACHE/sandbox ]] || CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/backproof
SANDBOX_CACHE=$CACHE/sandbox
mkdir -p "$SANDBOX_CACHE"

# ---------------------------------------------------------------- helpers

# Paths removed on exit (temporary rootfs, partial tarball).
CLEANUP=()
on_exit() {
  local p
  for p in "${CLEANUP[@]}"; do remove_tree "$p"; done
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# remove_tree DIR: rm -rf that never crosses into a mount (debootstrap mounts /proc etc.).
remove_tree() {
  local d=$1 m
  [[ -e $d ]] || return 0
  if [[ -d $d ]]; then
    while read -r m; do
      umount -l "$m" 2>/dev/null || true
    done < <(awk -v d="$d/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r)
  fi
  rm -rf --one-file-system "$d"
}

label_of() { docker image inspect -f "{{index .Config.Labels \"$LABEL_KEY\"}}" "$1" 2>/dev/null || true; }
id_of() { docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || true; }

# drop_old ID NAME: remove the image NAME replaced (if nothing else uses it).
drop_old() {
  local old=$1 name=$2
  [[ -n $old && $old != "$(id_of "$name")" ]] || return 0
  docker image rm "$old" >/dev/null 2>&1 || note "kept old image $old (still in use)"
}

# The bookworm mirror apt uses here: deb822 *.sources first, then one-line *.list.
debian_mirror() {
  if [[ -n ${BACKPROOF_DEBIAN_MIRROR:-} ]]; then echo "$BACKPROOF_DEBIAN_MIRROR"; return; fi
  local f m SUITE=bookworm
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -r $f ]] || continue
    m=$(awk -v suite="$SUITE" '
      BEGIN { RS = ""; FS = "\n" }
      {
        types = ""; uris = ""; suites = ""; enabled = "yes"
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^[ \t]*#/ || $i !~ /:/) continue
          k = tolower($i); sub(/:.*/, "", k)
          v = $i; sub(/^[^:]*:[ \t]*/, "", v)
          if (k == "types") types = v
          else if (k == "uris") uris = v
          else if (k == "suites") suites = v
          else if (k == "enabled") enabled = tolower(v)
        }
        if (enabled == "no" || (" " types " ") !~ / deb / || (" " suites " ") !~ (" " suite " ")) next
        n = split(uris, u, /[ \t]+/)
        for (j = 1; j <= n; j++) if (u[j] != "") { print u[j]; exit }
      }' "$f")
    if [[ -n $m ]]; then echo "$m"; return; fi
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -r $f ]] || continue
    m=$(awk -v suite="$SUITE" '
      $1 == "deb" {
        i = 2
        if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
        if ($(i + 1) == suite) { print $i; exit }
      }' "$f")
    if [[ -n $m ]]; then echo "$m"; return; fi
  done
  echo http://deb.debian.org/debian
}

ensure_debootstrap() {
  command -v debootstrap >/dev/null && return 0
  say "installing debootstrap"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q debootstrap >>"${LOG:-/dev/stderr}" 2>&1 ||
    { quietly apt-get update -q && quietly apt-get install -y -q debootstrap; }
  command -v debootstrap >/dev/null || die "debootstrap did not install"
}

# ---------------------------------------------------------------- base image

# The rootfs recipe. Its text is part of the base image's hash: edit it and the base
# (and then every engine image) is rebuilt.
build_rootfs() {
  local dir=$1 mirror=$2
  quietly debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$dir" "$mirror"
  # Postinst scripts must not have left servers running in the rootfs.
  local p
  for p in /proc/[0-9]*; do
    if [[ $(readlink "$p/root" 2>/dev/null) == "$dir" ]]; then
      say "stopping process ${p#/proc/} left running in the rootfs by a package script"
      kill "${p#/proc/}" 2>/dev/null || true
    fi
  done
  # Debian's packages made a "main" cluster; the entrypoint makes its own in PGDATA.
  rm -rf "$dir"/etc/postgresql/15/main "$dir"/var/lib/postgresql/15 "$dir"/var/log/postgresql/*
  # Lean: no package cache, apt lists, docs (copyright files stay), manuals, translations.
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/cache/apt/*.bin "$dir"/var/lib/apt/lists/*
  find "$dir"/usr/share/doc -mindepth 1 -not -name copyright -not -type d -delete
  find "$dir"/usr/share/doc -mindepth 1 -type d -empty -delete
  rm -rf "$dir"/usr/share/man/* "$dir"/usr/share/info/* "$dir"/usr/share/locale/*
  find "$dir"/var/log -type f -exec truncate -s 0 '{}' +
  # Docker supplies these; keep nothing of the build machine.
  : >"$dir"/etc/resolv.conf
  echo localhost >"$dir"/etc/hostname
  : >"$dir"/etc/machine-id
}

# A MySQL/MariaDB root: the data directory the packages made is not ours either
# (the entrypoint makes its own). Part of those roots' hash.
clean_mysql_rootfs() {
  rm -rf "$1"/var/lib/mysql "$1"/var/log/mysql/*
}

# A PostgreSQL/Redis/Valkey root: no cluster, no dump files of the package scripts.
clean_server_rootfs() {
  rm -rf "$1"/etc/postgresql/*/main "$1"/var/lib/postgresql/* "$1"/var/lib/redis/* "$1"/var/lib/valkey/*
}

# base_hash ROOT: the hash of a root's recipe (bookworm's as it always was).
base_hash() {
  local SUITE=${ROOT_SUITE[$1]} INCLUDE=${INCLUDES[$1]}
  {
    echo "$SUITE $INCLUDE $IMAGE_PATH"
    declare -f build_rootfs
    if [[ $1 != bookworm ]]; then
      echo "$1"
      declare -f "${ROOT_CLEAN[$1]}"
    fi
  } | sha256sum | cut -c1-16
}

# make_tarball FILE ROOT: debootstrap into a scratch dir and tar it to FILE.
make_tarball() {
  local tarball=$1 root=$2 SUITE=${ROOT_SUITE[$2]} INCLUDE=${INCLUDES[$2]} mirror dir
  [[ $EUID -eq 0 ]] || die "building the base rootfs needs root (debootstrap); no cached $tarball"
  ensure_debootstrap
  mirror=$(debian_mirror)
  dir=$(mktemp -d "$SANDBOX_CACHE/rootfs.XXXXXX")
  CLEANUP+=("$dir" "$tarball.tmp")
  chmod 755 "$dir"
  say "debootstrap $SUITE from $mirror (1-5 min)"
  build_rootfs "$dir" "$mirror"
  [[ $root == bookworm ]] || "${ROOT_CLEAN[$root]}" "$dir"
  note "packing the rootfs into $tarball"
  tar --numeric-owner -C "$dir" -cf "$tarball.tmp" .
  mv -f "$tarball.tmp" "$tarball"
  remove_tree "$dir"
  # Tarballs of older recipes are dead weight.
  local f
  for f in "$SANDBOX_CACHE"/base-"$root"-[0-9a-f]*.tar; do
    [[ $f == "$tarball" ]] || rm -f "$f"
  done
}

# ensure_base ROOT: PREFIX/base:ROOT from its (cached) rootfs tarball.
declare -A BASE_DONE=()
ensure_base() {
  local root=$1 SUITE=${ROOT_SUITE[$1]} BASE_TAG=$PREFIX/base:$1 BASE_HASH INCLUDE=${INCLUDES[$1]}
  [[ -z ${BASE_DONE[$root]:-} ]] || return 0
  BASE_DONE[$root]=1
  BASE_HASH=$(base_hash "$root")
  if [[ -z $FORCE && $(label_of "$BASE_TAG") == "$BASE_HASH" ]]; then
    note "$BASE_TAG is up to date"
    return 0
  fi
  local tarball=$SANDBOX_CACHE/base-$root-$BASE_HASH.tar old
  if [[ -n $FORCE || ! -s $tarball ]]; then make_tarball "$tarball" "$root"; fi
  say "importing $BASE_TAG"
  old=$(id_of "$BASE_TAG")
  quietly docker import \
    -c "ENV PATH=$IMAGE_PATH" \
    -c "LABEL $LABEL_KEY=$BASE_HASH" \
    -c 'CMD ["bash"]' \
    -m "debootstrap --variant=minbase --include=$INCLUDE $SUITE (scripts/sandbox-images.sh)" \
    "$tarball" "$BASE_TAG"
  drop_old "$old" "$BASE_TAG"
}

# ---------------------------------------------------------------- engine images

# server_version ENGINE BASE: x.y.z of the engine's packaged server in the base image.
server_version() {
  local v
  v=$(docker run --rm --network none --entrypoint dpkg-query "$2" -W -f '${Version}' "${PACKAGES[$1]}") ||
    die "cannot read the version of ${PACKAGES[$1]} in $2"
  v=${v#*:}
  v=${v%%[-+~]*}
  [[ $v =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "unexpected version '$v' of ${PACKAGES[$1]} in $2"
  echo "$v"
}

ensure_engine() {
  local dir=$IMAGES_DIR/${DIRS[$1]} base=$PREFIX/base:${ROOTS[$1]} name=${1%%-*} tag=${TAGS[$1]} image hash old
  local -a args=(--build-arg "BASE=$base")
  [[ -z ${BUILD_ARGS[$1]:-} ]] || args+=(--build-arg "${BUILD_ARGS[$1]}")
  [[ -f $dir/Dockerfile ]] || die "missing $dir/Dockerfile"
  [[ -n $tag ]] || tag=$(server_version "$1" "$base")
  image=$PREFIX/$name:$tag
  # The base image's id, and every file of the build context with its mode.
  hash=$({
    id_of "$base"
    [[ -z ${BUILD_ARGS[$1]:-} ]] || echo "${BUILD_ARGS[$1]}"
    cd "$dir"
    find . -type f -printf '%m %p\n' | LC_ALL=C sort
    find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
  } | sha256sum | cut -c1-16)
  if [[ -z $FORCE && $(label_of "$image") == "$hash" ]]; then
    note "$image is up to date"
  else
    say "building $image"
    old=$(id_of "$image")
    quietly docker build ${FORCE:+--no-cache} "${args[@]}" \
      --label "$LABEL_KEY=$hash" \
      -t "$image" "$dir"
    drop_old "$old" "$image"
  fi
  # Versioned images answer to their major.minor too (mariadb:10.11).
  if [[ -z ${TAGS[$1]} ]]; then quietly docker tag "$image" "$PREFIX/$name:${tag%.*}"; fi
}

# ---------------------------------------------------------------- ferretdb

# `go install` of FerretDB fails (its version file is generated in its repository):
# build it in a scratch module, vendored, with the version written in; CGO off makes
# it static, for an image FROM scratch. About 1 min; the binary is cached.
ensure_ferretdb_bin() {
  FERRETDB_BIN=$CACHE/bin/ferretdb-$FERRETDB_VERSION
  [[ -x $FERRETDB_BIN ]] && return 0
  command -v go >/dev/null || die "building FerretDB needs go"
  mkdir -p "$CACHE/bin"
  local tmp
  tmp=$(mktemp -d "$CACHE/bin/.ferretdb.XXXXXX")
  CLEANUP+=("$tmp")
  say "building FerretDB $FERRETDB_VERSION (about 1 min)"
  (
    cd "$tmp"
    quietly go mod init ferretdb-build
    quietly go get -tool "github.com/FerretDB/FerretDB/cmd/ferretdb@$FERRETDB_VERSION"
    quietly go mod vendor
    echo "$FERRETDB_VERSION" >vendor/github.com/FerretDB/FerretDB/build/version/version.txt
    quietly env CGO_ENABLED=0 GOFLAGS=-mod=vendor go build -trimpath -o ferretdb github.com/FerretDB/FerretDB/cmd/ferretdb
  )
  "$tmp/ferretdb" --version >/dev/null || die "the FerretDB build does not run"
  mv -f "$tmp/ferretdb" "$FERRETDB_BIN"
  remove_tree "$tmp"
}

ensure_ferretdb() {
  ensure_ferretdb_bin
  local dir=$IMAGES_DIR/ferretdb image=$PREFIX/ferretdb:${TAGS[ferretdb]} hash old ctx
  hash=$({
    sha256sum <"$FERRETDB_BIN"
    go version
    cd "$dir"
    find . -type f -printf '%m %p\n' | LC_ALL=C sort
    find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
  } | sha256sum | cut -c1-16)
  if [[ -z $FORCE && $(label_of "$image") == "$hash" ]]; then
    note "$image is up to date"
    return 0
  fi
  say "building $image"
  ctx=$(mktemp -d "$SANDBOX_CACHE/ferretdb-context.XXXXXX")
  CLEANUP+=("$ctx")
  cp "$dir/Dockerfile" "$ctx/"
  cp "$FERRETDB_BIN" "$ctx/ferretdb"
  (cd "$REPO" && quietly env CGO_ENABLED=0 go build -trimpath -o "$ctx/entrypoint" ./sandbox/images/ferretdb)
  old=$(id_of "$image")
  quietly docker build ${FORCE:+--no-cache} --label "$LABEL_KEY=$hash" -t "$image" "$ctx"
  drop_old "$old" "$image"
  remove_tree "$ctx"
}

# ---------------------------------------------------------------- main

docker info >/dev/null 2>&1 ||
  die "no docker engine answers (docker info failed); start dockerd first, e.g. with scripts/testenv.sh up"

# One builder at a time on this machine; a second run then finds everything done.
exec 9>"$SANDBOX_CACHE/.lock"
flock 9

for e in "${ENGINES[@]}"; do
  case $e in
    ferretdb) ensure_ferretdb ;;
    *) ensure_base "${ROOTS[$e]}" && ensure_engine "$e" ;;
  esac
done
