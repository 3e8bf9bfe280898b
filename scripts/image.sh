#!/usr/bin/env bash
# Builds the backproof daemon image from the top-level Dockerfile and prints its name
# on stdout (everything else goes to stderr):
#
#   scripts/image.sh [--tag NAME] [--base IMAGE] [--force]
#
# --tag: the image name (default backproof:latest). --base: a Debian sid image to
# build FROM (default backproof-sandbox/base:sid-pg, made by scripts/sandbox-images.sh
# from Debian packages when missing: no registry needed). --force: build even if up to date.
#
# The binary is built here (CGO_ENABLED=0, version from git describe) and copied in,
# as release tooling does. The image carries the label org.backproof.image.hash of the
# binary, the Dockerfile and the base image's id, and is kept when that matches. The
# default base has pg_dump 18 already; another base needs a Debian mirror for apt-get,
# once: later builds reuse that layer.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LABEL_KEY=org.backproof.image.hash
TAG=backproof:latest
BASE=''
FORCE=''

say() { echo "image: $*" >&2; }
die() { say "$*"; exit 1; }
usage() {
  sed -n '5,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

while (($#)); do
  case $1 in
    --tag) (($# >= 2)) || usage; TAG=$2; shift 2 ;;
    --tag=*) TAG=${1#*=}; shift ;;
    --base) (($# >= 2)) || usage; BASE=$2; shift 2 ;;
    --base=*) BASE=${1#*=}; shift ;;
    --force) FORCE=1; shift ;;
    -h | --help) usage ;;
    *) say "unknown argument $1"; usage ;;
  esac
done

docker info >/dev/null 2>&1 ||
  die "no docker engine answers (docker info failed); start dockerd first, e.g. with scripts/testenv.sh up"

if [[ -z $BASE ]]; then
  BASE=backproof-sandbox/base:sid-pg
  if ! docker image inspect "$BASE" >/dev/null 2>&1; then
    say "$BASE is missing: building it with scripts/sandbox-images.sh"
    bash "$REPO/scripts/sandbox-images.sh" postgres-18 >&2
  fi
fi
base_id=$(docker image inspect -f '{{.Id}}' "$BASE" 2>/dev/null) ||
  die "base image $BASE is not present locally"

CTX=$(mktemp -d "${TMPDIR:-/tmp}/backproof-image.XXXXXX")
trap 'rm -rf "$CTX"' EXIT

cd "$REPO"
VERSION=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT=$(git rev-parse HEAD 2>/dev/null || true)
CGO_ENABLED=0 GOOS=linux go build -trimpath \
  -ldflags "-s -w -X main.version=$VERSION -X main.commit=$COMMIT" \
  -o "$CTX/backproof" ./cmd/backproof
cp Dockerfile "$CTX/"

hash=$({
  echo "$base_id"
  sha256sum "$CTX/backproof" "$CTX/Dockerfile" | cut -d' ' -f1
} | sha256sum | cut -c1-16)

# One build at a time per machine: concurrent runs would race for the tag.
LOCK=${BACKPROOF_CACHE_DIR:-/var/cache/backproof}
mkdir -p "$LOCK" 2>/dev/null && [[ -w $LOCK ]] || LOCK=${TMPDIR:-/tmp}
exec 9>"$LOCK/.image.lock"
flock 9

old=$(docker image inspect -f '{{.Id}}' "$TAG" 2>/dev/null || true)
if [[ -z $FORCE && -n $old && $(docker image inspect -f "{{index .Config.Labels \"$LABEL_KEY\"}}" "$TAG") == "$hash" ]]; then
  say "$TAG is up to date ($VERSION)"
else
  say "building $TAG ($VERSION) FROM $BASE"
  docker build ${FORCE:+--no-cache} \
    --build-arg "BASE=$BASE" --build-arg "VERSION=$VERSION" \
    --label "$LABEL_KEY=$hash" -t "$TAG" "$CTX" >&2
  # The image this one replaced, unless something still uses it.
  if [[ -n $old && $old != "$(docker image inspect -f '{{.Id}}' "$TAG")" ]]; then
    docker image rm "$old" >/dev/null 2>&1 || true
  fi
fi
echo "$TAG"
