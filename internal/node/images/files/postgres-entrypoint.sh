#!/bin/bash
# Entrypoint of the node's PostgreSQL image (internal/node/images). It honours the
# documented interface of the official postgres image as our manifests use it:
#
#   POSTGRES_PASSWORD  required (unless POSTGRES_HOST_AUTH_METHOD=trust); the superuser's
#                      password, given to initdb through a pipe, never an argument
#   POSTGRES_USER      superuser name (default postgres)
#   POSTGRES_DB        database created at init (default: $POSTGRES_USER)
#   PGDATA             data directory (default /var/lib/postgresql/data); initdb runs
#                      when it holds no PG_VERSION
#   POSTGRES_INITDB_ARGS, POSTGRES_INITDB_WALDIR, POSTGRES_HOST_AUTH_METHOD (default
#                      scram-sha-256)
#   <VAR>_FILE         for POSTGRES_PASSWORD, POSTGRES_USER, POSTGRES_DB and
#                      POSTGRES_INITDB_ARGS: read the value from that file
#   /docker-entrypoint-initdb.d/*.sh|*.sql  run once, after init
#
# Local (socket) connections are trusted, TCP from any address needs the password
# (scram-sha-256), and the server listens on every address. Started as root, it makes
# the directories and drops to postgres (uid 70); started as any other uid (as the
# manifests do, uid 70) it runs as that. Either way postgres ends up as this process
# (PID 1 in a container), so SIGTERM/SIGINT shut it down cleanly.
set -Eeuo pipefail

if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
	set -- postgres "$@"
fi
if [ "$1" != postgres ]; then
	exec "$@"
fi

# VAR_FILE: the value of VAR from a file (a mounted Secret), never both.
file_env() {
	local var="$1" file="${1}_FILE"
	if [ -n "${!var:-}" ] && [ -n "${!file:-}" ]; then
		printf 'entrypoint: error: both %s and %s are set\n' "$var" "$file" >&2
		exit 1
	fi
	if [ -n "${!file:-}" ]; then
		export "$var"="$(<"${!file}")"
	fi
	unset "$file"
}
for v in POSTGRES_PASSWORD POSTGRES_USER POSTGRES_DB POSTGRES_INITDB_ARGS; do file_env "$v"; done

: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
: "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
: "${POSTGRES_INITDB_ARGS:=}"
: "${POSTGRES_INITDB_WALDIR:=}"
export PGDATA

log() { printf '%s entrypoint: %s\n' "$(date -u '+%Y-%m-%d %H:%M:%S UTC')" "$*" >&2; }

if [ "$(id -u)" = 0 ]; then
	mkdir -p "$PGDATA" /var/run/postgresql
	chmod 00700 "$PGDATA" || :
	chmod 03775 /var/run/postgresql || :
	if [ "$(stat -c %u "$PGDATA")" != 70 ]; then
		chown -R postgres:postgres "$PGDATA"
	fi
	chown postgres:postgres /var/run/postgresql
	exec setpriv --reuid=postgres --regid=postgres --init-groups -- "$0" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
		log "error: PGDATA ($PGDATA) is not initialised and POSTGRES_PASSWORD is empty;" \
			"set POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust, never outside a test)"
		exit 1
	fi
	mkdir -p "$PGDATA"
	chmod 00700 "$PGDATA" 2>/dev/null || :
	if ! getent passwd "$(id -u)" >/dev/null; then
		log "error: uid $(id -u) has no passwd entry; run as uid 70 (postgres) or as root"
		exit 1
	fi
	log "initialising $PGDATA for user $POSTGRES_USER"
	# The password reaches initdb through a pipe (printf is a shell builtin): it is
	# never an argument of any process.
	# shellcheck disable=SC2086
	waldir=()
	if [ -n "$POSTGRES_INITDB_WALDIR" ]; then
		waldir=(--waldir "$POSTGRES_INITDB_WALDIR")
	fi
	initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "${POSTGRES_PASSWORD:-}") \
		--auth-local=trust --auth-host="$POSTGRES_HOST_AUTH_METHOD" "${waldir[@]}" $POSTGRES_INITDB_ARGS
	printf '\n# Added by the image entrypoint: any address, with a password.\nhost all all all %s\n' \
		"$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"

	# A server on the socket only, to create the database and run init scripts.
	pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w -t 60 start
	psql_init=(psql -v ON_ERROR_STOP=1 --no-password --no-psqlrc --username "$POSTGRES_USER" -p 5432)
	if [ "$POSTGRES_DB" != postgres ]; then
		log "creating database $POSTGRES_DB"
		"${psql_init[@]}" --dbname postgres --set db="$POSTGRES_DB" <<-'EOSQL'
			CREATE DATABASE :"db";
		EOSQL
	fi
	if [ -d /docker-entrypoint-initdb.d ]; then
		for f in /docker-entrypoint-initdb.d/*; do
			case "$f" in
			*.sh) log "running $f"; . "$f" ;;
			*.sql) log "running $f"; "${psql_init[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
			*.sql.gz) log "running $f"; gunzip -c "$f" | "${psql_init[@]}" --dbname "$POSTGRES_DB" ;;
			*) ;;
			esac
		done
	fi
	pg_ctl -D "$PGDATA" -m fast -w stop
	log "init done"
fi

exec "$@"
