#!/usr/bin/env bash
# The project's own PostgreSQL cluster, run as the `postgres` OS user.
#   deploy/postgres.sh start|stop|status
#   deploy/postgres.sh psql [psql args...]   (superuser `postgres` over the unix socket)
# Env: CONCORD_PG_PORT (54329), CONCORD_STATE_DIR (<repo>/.cache).
set -euo pipefail
COMPONENT=postgres
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PGDATA_DIR="$STATE_DIR/pgdata"
SOCK_DIR="$STATE_DIR/pgsock"
LOG="$LOG_DIR/postgres.log"
PG_USER=postgres

# The data directory's own major version if it exists, else the highest installed.
pg_bin_dir() {
    local d
    if [[ -f "$PGDATA_DIR/PG_VERSION" ]]; then
        d="/usr/lib/postgresql/$(<"$PGDATA_DIR/PG_VERSION")/bin"
        [[ -x "$d/postgres" ]] && echo "$d"
        return 0
    fi
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V); do
        [[ -x "$d/postgres" ]] && PG_FOUND="$d"
    done
    echo "${PG_FOUND:-}"
}
PG_BIN="$(pg_bin_dir)"
require_pg_bin() {
    [[ -n "$PG_BIN" ]] && return 0
    if [[ -f "$PGDATA_DIR/PG_VERSION" ]]; then
        die "$PGDATA_DIR was made by PostgreSQL $(<"$PGDATA_DIR/PG_VERSION"), whose server is not installed"
    fi
    die "no PostgreSQL server under /usr/lib/postgresql: run deploy/install.sh first"
}

as_pg() {
    if [[ "$(id -u)" == 0 ]]; then
        runuser -u "$PG_USER" -- "$@"
    elif [[ "$(id -un)" == "$PG_USER" ]]; then
        "$@"
    else
        die "run as root (or as the $PG_USER user)"
    fi
}

ensure_dirs() {
    id "$PG_USER" >/dev/null 2>&1 || die "OS user $PG_USER missing (it comes with the postgresql package)"
    mkdir -p "$PGDATA_DIR" "$SOCK_DIR"
    touch "$LOG"
    if [[ "$(id -u)" == 0 ]]; then
        chown "$PG_USER:$PG_USER" "$PGDATA_DIR" "$SOCK_DIR" "$LOG"
    fi
    chmod 700 "$PGDATA_DIR"
    as_pg test -w "$PGDATA_DIR" ||
        die "$PG_USER cannot reach $PGDATA_DIR (a parent directory is not traversable by it?)"
}

# Settings we own live in concord.conf, rewritten on every start (so a changed
# CONCORD_PG_PORT takes effect) and included from postgresql.conf.
write_conf() {
    as_pg tee "$PGDATA_DIR/concord.conf" >/dev/null <<EOF
# Written by deploy/postgres.sh on every start; edits here are lost.
port = $PG_PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$SOCK_DIR'
max_connections = 300
shared_buffers = 256MB
fsync = on
synchronous_commit = on
full_page_writes = on
# The data is in memory or on SSD: an index probe is not four times a sequential page read.
# At the default of 4, batch reads by "= ANY(ids)" scanned whole tables of a few
# thousand rows (intake's invoice read: 10-14 ms a batch at 6,000 invoices; 1-2 ms with the
# indexes) - docs/performance.md, "Stop 29".
random_page_cost = 1.1
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
EOF
    if ! grep -q "^include_if_exists = 'concord.conf'" "$PGDATA_DIR/postgresql.conf"; then
        echo "include_if_exists = 'concord.conf'" | as_pg tee -a "$PGDATA_DIR/postgresql.conf" >/dev/null
    fi
}

init_once() {
    [[ -f "$PGDATA_DIR/PG_VERSION" ]] && return 0
    say "initdb $PGDATA_DIR ($("$PG_BIN/postgres" --version))"
    as_pg "$PG_BIN/initdb" -D "$PGDATA_DIR" -U postgres -E UTF8 --locale=C.UTF-8 --lc-collate=C \
        --auth-host=scram-sha-256 --auth-local=trust >>"$LOG" 2>&1 ||
        {
            log_tail "$LOG"
            die "initdb failed, see $LOG"
        }
}

is_running() { as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1; }

provision() {
    as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK_DIR" -p "$PG_PORT" -U postgres -d postgres \
        -f "$DEPLOY_DIR/postgres/init.sql" >/dev/null ||
        die "creating or upgrading roles and databases failed (deploy/postgres/init.sql)"
}

start() {
    require_pg_bin
    ensure_dirs
    init_once
    write_conf
    if is_running; then
        say "already running on 127.0.0.1:$PG_PORT"
    else
        say "starting on 127.0.0.1:$PG_PORT (log: $LOG)"
        as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -l "$LOG" -w -t 60 -s start ||
            {
                log_tail "$LOG"
                die "pg_ctl start failed, see $LOG"
            }
    fi
    provision
    say "ready: postgresql://<service>:local-dev-<service>@127.0.0.1:$PG_PORT/<service> (migrations: <service>_owner)"
}

stop() {
    if [[ ! -f "$PGDATA_DIR/PG_VERSION" ]] || [[ -z "$PG_BIN" ]] || ! is_running; then
        say "not running"
        return 0
    fi
    as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t 60 -s stop ||
        {
            warn "fast shutdown failed, trying immediate"
            as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m immediate -w -t 30 -s stop
        }
    say "stopped"
}

status() {
    if [[ -f "$PGDATA_DIR/PG_VERSION" ]] && [[ -n "$PG_BIN" ]] && is_running; then
        if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; then
            say "running on 127.0.0.1:$PG_PORT"
        else
            say "process running but not accepting connections on 127.0.0.1:$PG_PORT"
            return 1
        fi
    else
        say "stopped"
        return 3
    fi
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
psql)
    shift
    require_pg_bin
    exec "$PG_BIN/psql" -X -h "$SOCK_DIR" -p "$PG_PORT" -U postgres "$@"
    ;;
*)
    echo "usage: $0 start|stop|status|psql [args]" >&2
    exit 2
    ;;
esac
