# Shell helpers shared by scripts/testenv.sh and scripts/k8s.sh (sourced;
# each defines its own say and die).

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
