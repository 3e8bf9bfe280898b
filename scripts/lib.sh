# Shell helpers shared by scripts/testenv.sh and scripts/k8s.sh (sourced;
# each defines its own say and die).

# logged LOG CMD...: run CMD with its output appended to LOG; on failure show the tail and exit.
logged() {
  local log=$1; shift
  if ! "$@" >>"$log" 2>&1; then
    say "failed: $* (log: $log)"
    tail -n 40 "$log" >&2
    exit 1
  fi
}

# apt_install LOG PACKAGE...: install Debian packages (as root) without letting
# their scripts start services (Debian's main cluster on :5432, dockerd, containerd).
apt_install() {
  local log=$1; shift
  [[ $EUID -eq 0 ]] || die "missing packages: $* (run as root, or apt-get install them)"
  say "installing $* (log: $log)"
  # One install at a time on the machine (testenv.sh and k8s.sh may run
  # together): apt would refuse the second, and the first to finish would
  # remove the policy that keeps the other's services from starting.
  (
    flock 8
    local policy=/usr/sbin/policy-rc.d
    if [[ ! -e $policy ]]; then
      printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    logged "$log" apt-get update -q
    logged "$log" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
  ) 8>/run/lock/backproof-apt.lock || exit 1
}

rand_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# A TCP port nothing answers on at 127.0.0.1 (a listener on 0.0.0.0 would answer too).
# 20000-31999 stays below Linux's ephemeral range, so outgoing connections cannot take it.
free_port() {
  local p
  for _ in {1..100}; do
    p=$((20000 + RANDOM % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  die "no free port found"
}

# closefds CMD...: close every fd above 2, then exec CMD (or call it, if a function),
# so that long-lived servers hold no pipe or lock of whoever ran the script (CI
# would wait for such a pipe). It replaces the shell: call it as `closefds .. &`
# or in a ( subshell ).
closefds() {
  local fd
  for fd in /proc/"$BASHPID"/fd/*; do
    fd=${fd##*/}
    if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
  done
  if declare -F "$1" >/dev/null; then "$@"; exit; else exec "$@"; fi
}
