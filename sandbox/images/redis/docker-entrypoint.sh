#!/usr/bin/env bash
# Entrypoint of backproof-sandbox/redis. Same behaviour as the official redis image's
# docker-entrypoint.sh, on Debian's redis-server:
#   - "docker run IMAGE --appendonly no" or "IMAGE my.conf" run redis-server with them;
#   - started as root, it hands the working directory (/data) to $REDIS_USER (redis,
#     or valkey in the valkey images) and re-runs itself as that user;
#   - protected mode is off unless asked for (the official image compiles that default
#     in; Debian's binary defaults to on, which refuses clients through a published port).
set -eo pipefail

# First arg is an option or a config file: run redis-server with it.
if [[ ${1:-} == -* || ${1:-} == *.conf ]]; then
	set -- redis-server "$@"
fi

if [[ ${1:-} == redis-server && $(id -u) == 0 ]]; then
	u=${REDIS_USER:-redis}
	find . \! -user "$u" -exec chown "$u" '{}' +
	exec setpriv --reuid="$u" --regid="$u" --init-groups -- "${BASH_SOURCE[0]}" "$@"
fi

if [[ ${1:-} == redis-server ]]; then
	args=("${@:2}") conf=()
	# An optional config file comes first; options must follow it.
	if ((${#args[@]})) && [[ ${args[0]} != -* ]]; then
		conf=("${args[0]}") args=("${args[@]:1}")
	fi
	asked=
	for a in "${args[@]}"; do
		if [[ $a == --protected-mode ]]; then asked=1; fi
	done
	if ((${#conf[@]})) && [[ -r ${conf[0]} ]] && grep -qiE '^[[:space:]]*protected-mode[[:space:]]' "${conf[0]}"; then
		asked=1
	fi
	if [[ -z $asked ]]; then args=(--protected-mode no "${args[@]}"); fi
	set -- redis-server "${conf[@]}" "${args[@]}"
fi

# An appropriate umask, if none was set.
if [[ $(umask) == 0022 ]]; then umask 0077; fi

exec "$@"
