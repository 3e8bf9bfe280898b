#!/usr/bin/env bash
# Makes sure a Docker engine answers on this machine (root, Debian): installs
# Debian's docker.io when dockerd is missing, starts dockerd in the background
# (published ports default to 127.0.0.1; log: /var/log/backproof/dockerd.log)
# and waits until `docker info` answers. Does nothing when one already does.
# Used by scripts/testenv.sh and by `backproof demo` on a fresh machine.
set -euo pipefail

LOG_DIR=/var/log/backproof
say() { echo "dockerd: $*" >&2; }
die() { say "$*"; exit 1; }

docker info >/dev/null 2>&1 && exit 0
[[ $EUID -eq 0 ]] || die "no Docker engine answers, and only root can start one: run sudo $0"
mkdir -p "$LOG_DIR"

if ! command -v dockerd >/dev/null; then
  [[ -r /etc/debian_version ]] || die "dockerd is not installed; install Docker Engine for this system (https://docs.docker.com/engine/install/)"
  say "installing Debian's docker.io (about a minute; log: $LOG_DIR/apt.log)"
  # The package must not start the engine itself: we start it below, our way.
  policy=/usr/sbin/policy-rc.d made_policy=
  if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1; fi
  ok=1
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io; } >>"$LOG_DIR/apt.log" 2>&1 || ok=
  [[ -z $made_policy ]] || rm -f "$policy"
  if [[ -z $ok ]]; then
    tail -n 20 "$LOG_DIR/apt.log" >&2
    die "apt-get install docker.io failed (log: $LOG_DIR/apt.log)"
  fi
fi

# Its own session, output to the log, no inherited pipe: dockerd outlives
# this script and whoever ran it.
log=$LOG_DIR/dockerd.log
setsid nohup dockerd --ip 127.0.0.1 >>"$log" 2>&1 </dev/null &
for _ in {1..60}; do
  docker info >/dev/null 2>&1 && exit 0
  sleep 1
done
tail -n 40 "$log" >&2
die "dockerd did not answer docker info within 60 s (log: $log)"
