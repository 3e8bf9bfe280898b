#!/usr/bin/env bash
# Entrypoint of backproof-sandbox/postgres. Same behaviour as the official postgres
# image's docker-entrypoint.sh, on Debian's postgresql package:
#   - POSTGRES_PASSWORD (required unless POSTGRES_HOST_AUTH_METHOD=trust), POSTGRES_USER
#     (default postgres), POSTGRES_DB (default: the user), PGDATA, POSTGRES_INITDB_ARGS,
#     POSTGRES_INITDB_WALDIR, POSTGRES_HOST_AUTH_METHOD (default: password_encryption,
#     i.e. scram-sha-256), and the *_FILE variants of the first four.
#   - first start: initdb, a temporary server on the unix socket only (creates
#     POSTGRES_DB, runs /docker-entrypoint-initdb.d/*), stop, then exec the real server.
#     "database system is ready to accept connections" is therefore logged twice.
#   - started as root, it prepares the directories and re-runs itself as postgres.
set -Eeo pipefail

# file_env VAR [DEFAULT]: set VAR from $VAR, or from the file named by $VAR_FILE.
file_env() {
	local var=$1 file_var=${1}_FILE def=${2:-} val
	if [[ -n ${!var:-} && -n ${!file_var:-} ]]; then
		echo >&2 "error: both $var and $file_var are set (but are exclusive)"
		exit 1
	fi
	val=$def
	if [[ -n ${!var:-} ]]; then
		val=${!var}
	elif [[ -n ${!file_var:-} ]]; then
		val=$(<"${!file_var}")
	fi
	export "$var=$val"
	unset "$file_var"
}

setup_env() {
	file_env POSTGRES_PASSWORD
	file_env POSTGRES_USER postgres
	file_env POSTGRES_DB "$POSTGRES_USER"
	file_env POSTGRES_INITDB_ARGS
	: "${POSTGRES_HOST_AUTH_METHOD:=}"
	declare -g DATABASE_ALREADY_EXISTS=
	if [[ -s $PGDATA/PG_VERSION ]]; then DATABASE_ALREADY_EXISTS=true; fi
}

# As root: PGDATA, the socket directory and the WAL directory belong to postgres.
create_db_directories() {
	mkdir -p "$PGDATA"
	chmod 00700 "$PGDATA" || :
	mkdir -p /var/run/postgresql
	chmod 03775 /var/run/postgresql || :
	if [[ -n ${POSTGRES_INITDB_WALDIR:-} ]]; then
		mkdir -p "$POSTGRES_INITDB_WALDIR"
		find "$POSTGRES_INITDB_WALDIR" \! -user postgres -exec chown postgres '{}' +
		chmod 700 "$POSTGRES_INITDB_WALDIR"
	fi
	find "$PGDATA" \! -user postgres -exec chown postgres '{}' +
	find /var/run/postgresql \! -user postgres -exec chown postgres '{}' +
}

verify_minimum_env() {
	if [[ -z $POSTGRES_PASSWORD && $POSTGRES_HOST_AUTH_METHOD != trust ]]; then
		cat >&2 <<-'EOE'
			Error: Database is uninitialized and superuser password is not specified.
			       You must specify POSTGRES_PASSWORD to a non-empty value for the
			       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".

			       You may also use "POSTGRES_HOST_AUTH_METHOD=trust" to allow all
			       connections without a password. This is *not* recommended.

			       See PostgreSQL documentation about "trust":
			       https://www.postgresql.org/docs/current/auth-trust.html
		EOE
		exit 1
	fi
	if [[ $POSTGRES_HOST_AUTH_METHOD == trust ]]; then
		cat >&2 <<-'EOWARN'
			********************************************************************************
			WARNING: POSTGRES_HOST_AUTH_METHOD has been set to "trust". This will allow
			         anyone with access to the Postgres port to access your database without
			         a password, even if POSTGRES_PASSWORD is set.
			********************************************************************************
		EOWARN
	fi
}

init_database_dir() {
	if [[ -n ${POSTGRES_INITDB_WALDIR:-} ]]; then
		set -- --waldir "$POSTGRES_INITDB_WALDIR" "$@"
	fi
	# --pwfile refuses a properly empty file, hence the "\n".
	eval 'initdb --username="$POSTGRES_USER" --pwfile=<(printf "%s\n" "$POSTGRES_PASSWORD") '"$POSTGRES_INITDB_ARGS"' "$@"'
}

# Host connections from anywhere, with the configured (or default) auth method.
setup_hba_conf() {
	if [[ ${1:-} == postgres ]]; then shift; fi
	local auth
	auth=$(postgres -C password_encryption "$@")
	: "${POSTGRES_HOST_AUTH_METHOD:=$auth}"
	{
		printf '\n'
		if [[ $POSTGRES_HOST_AUTH_METHOD == trust ]]; then
			printf '# warning trust is enabled for all connections\n'
		fi
		printf 'host all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD"
	} >>"$PGDATA/pg_hba.conf"
}

# Temporary server for the setup: unix socket only, so no client can connect early.
temp_server_start() {
	if [[ ${1:-} == postgres ]]; then shift; fi
	set -- "$@" -c listen_addresses='' -p "${PGPORT:-5432}"
	PGUSER=${PGUSER:-$POSTGRES_USER} pg_ctl -D "$PGDATA" -o "$(printf '%q ' "$@")" -w start
}

temp_server_stop() {
	PGUSER=${PGUSER:-postgres} pg_ctl -D "$PGDATA" -m fast -w stop
}

process_sql() {
	local runner=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
	if [[ -n $POSTGRES_DB ]]; then runner+=(--dbname "$POSTGRES_DB"); fi
	PGHOST='' PGHOSTADDR='' "${runner[@]}" "$@"
}

# POSTGRES_DB='' makes process_sql connect to "postgres"; :db still names POSTGRES_DB.
# shellcheck disable=SC2097,SC2098
setup_db() {
	local exists
	exists=$(POSTGRES_DB='' process_sql --dbname postgres --set db="$POSTGRES_DB" --tuples-only <<-'EOSQL'
		SELECT 1 FROM pg_database WHERE datname = :'db' ;
	EOSQL
	)
	if [[ -z $exists ]]; then
		POSTGRES_DB='' process_sql --dbname postgres --set db="$POSTGRES_DB" <<-'EOSQL'
			CREATE DATABASE :"db" ;
		EOSQL
		printf '\n'
	fi
}

# /docker-entrypoint-initdb.d: *.sh (run if executable, else sourced), *.sql, *.sql.gz/xz/zst.
process_init_files() {
	local f
	for f; do
		case $f in
			*.sh)
				if [[ -x $f ]]; then
					printf '%s: running %s\n' "$0" "$f"
					"$f"
				else
					printf '%s: sourcing %s\n' "$0" "$f"
					# shellcheck source=/dev/null
					. "$f"
				fi
				;;
			*.sql) printf '%s: running %s\n' "$0" "$f"; process_sql -f "$f"; printf '\n' ;;
			*.sql.gz) printf '%s: running %s\n' "$0" "$f"; gunzip -c "$f" | process_sql; printf '\n' ;;
			*.sql.xz) printf '%s: running %s\n' "$0" "$f"; xzcat "$f" | process_sql; printf '\n' ;;
			*.sql.zst) printf '%s: running %s\n' "$0" "$f"; zstd -dc "$f" | process_sql; printf '\n' ;;
			*) printf '%s: ignoring %s\n' "$0" "$f" ;;
		esac
		printf '\n'
	done
}

# Options that only print something: no setup for them.
want_help() {
	local arg
	for arg; do
		case $arg in
			-'?' | --help | --describe-config | -V | --version) return 0 ;;
		esac
	done
	return 1
}

main() {
	# "docker run IMAGE -c fsync=off": options alone are the server's.
	if [[ ${1:-} == -* ]]; then set -- postgres "$@"; fi

	if [[ ${1:-} == postgres ]] && ! want_help "$@"; then
		setup_env
		if [[ $(id -u) == 0 ]]; then
			create_db_directories
			exec setpriv --reuid=postgres --regid=postgres --init-groups -- "${BASH_SOURCE[0]}" "$@"
		fi

		if [[ -z $DATABASE_ALREADY_EXISTS ]]; then
			verify_minimum_env
			init_database_dir
			setup_hba_conf "$@"
			# Local connections are trusted during setup; the password covers a changed hba.
			export PGPASSWORD=${PGPASSWORD:-$POSTGRES_PASSWORD}
			temp_server_start "$@"
			setup_db
			shopt -s nullglob
			process_init_files /docker-entrypoint-initdb.d/*
			shopt -u nullglob
			temp_server_stop
			unset PGPASSWORD
			printf '\nPostgreSQL init process complete; ready for start up.\n\n'
		else
			printf '\nPostgreSQL Database directory appears to contain a database; Skipping initialization\n\n'
		fi
	fi

	exec "$@"
}

main "$@"
