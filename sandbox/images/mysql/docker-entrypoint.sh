#!/usr/bin/env bash
# Entrypoint of backproof-sandbox/mariadb and backproof-sandbox/mysql on Debian's
# packages, with the official images' variables:
#   - MARIADB_ROOT_PASSWORD or MYSQL_ROOT_PASSWORD (or *_FILE; required on first start):
#     root@'%' and root@localhost get it
#   - MARIADB_DATABASE or MYSQL_DATABASE: created on first start
#   - CMD of options only ("docker run IMAGE --log-bin"): the server's options
#   - first start: initialize /var/lib/mysql, then start the server with an --init-file
#     that sets the accounts. No temporary server: "ready for connections" and
#     "port: 3306" are logged once, by the real server.
set -Eeo pipefail

server=mysqld
if command -v mariadbd >/dev/null; then server=mariadbd; fi
DATADIR=/var/lib/mysql

# file_env VAR: set VAR from $VAR, or from the file named by $VAR_FILE.
file_env() {
	local var=$1 file_var=${1}_FILE
	if [[ -n ${!var:-} && -n ${!file_var:-} ]]; then
		echo >&2 "error: both $var and $file_var are set (but are exclusive)"
		exit 1
	fi
	if [[ -n ${!file_var:-} ]]; then export "$var=$(<"${!file_var}")"; fi
	unset "$file_var"
}

# sql_string S: S as an SQL string literal.
sql_string() {
	local s=${1//\\/\\\\}
	printf "'%s'" "${s//\'/\\\'}"
}

want_help() {
	local arg
	for arg; do
		case $arg in -'?' | --help | -V | --version) return 0 ;; esac
	done
	return 1
}

init_datadir() {
	local pw db init
	for v in MARIADB_ROOT_PASSWORD MYSQL_ROOT_PASSWORD MARIADB_DATABASE MYSQL_DATABASE; do file_env "$v"; done
	pw=${MARIADB_ROOT_PASSWORD:-${MYSQL_ROOT_PASSWORD:-}}
	db=${MARIADB_DATABASE:-${MYSQL_DATABASE:-}}
	if [[ -z $pw ]]; then
		echo >&2 "error: database is uninitialized and the root password is not set: set MARIADB_ROOT_PASSWORD or MYSQL_ROOT_PASSWORD"
		exit 1
	fi
	if [[ $server == mariadbd ]]; then
		mariadb-install-db --user=mysql --datadir="$DATADIR" --auth-root-authentication-method=normal \
			--skip-test-db --rpm >/dev/null
	else
		mysqld --initialize-insecure --user=mysql --datadir="$DATADIR" --log-error-verbosity=1
	fi
	# Read once at this start; the container is throwaway, the file stays in it.
	init=/run/mysqld/backproof-init.sql
	(
		umask 077
		cat >"$init" <<-EOSQL
			CREATE USER IF NOT EXISTS 'root'@'%' IDENTIFIED BY $(sql_string "$pw");
			GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;
			ALTER USER 'root'@'localhost' IDENTIFIED BY $(sql_string "$pw");
			DROP USER IF EXISTS 'root'@'127.0.0.1', 'root'@'::1';
		EOSQL
		if [[ -n ${HOSTNAME:-} ]]; then
			echo "DROP USER IF EXISTS 'root'@$(sql_string "$HOSTNAME");" >>"$init"
		fi
		if [[ -n $db ]]; then
			echo "CREATE DATABASE IF NOT EXISTS \`${db//\`/\`\`}\`;" >>"$init"
		fi
	)
	chown mysql:mysql "$init"
	INIT_FILE=$init
}

main() {
	if [[ $# -eq 0 || ${1:-} == -* ]]; then set -- "$server" "$@"; fi
	if [[ $1 == mysqld || $1 == mariadbd ]] && ! want_help "$@"; then
		mkdir -p /run/mysqld "$DATADIR"
		chown mysql:mysql /run/mysqld "$DATADIR"
		INIT_FILE=
		if [[ ! -d $DATADIR/mysql ]]; then init_datadir; fi
		set -- "$@" --user=mysql
		if [[ -n $INIT_FILE ]]; then set -- "$@" --init-file="$INIT_FILE"; fi
	fi
	exec "$@"
}

main "$@"
