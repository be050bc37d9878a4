#!/usr/bin/env bash
# The hold-queue console (SPEC §14.2) as a background process: http://127.0.0.1:8090/
#   deploy/console.sh start|stop|status
# Runs `.venv/bin/python -m services.console` from the repo root with
#   CONCORD_SERVICE=console, its own database `console` (runtime role console, migrated as
#   console_owner), the service databases read as concord_reader, Kafka as principal ops.
# Env: CONCORD_CONSOLE_PORT (8090), CONCORD_CONSOLE_START_TIMEOUT (60 s), and every other
#      CONCORD_* variable of the caller's environment (CONCORD_ROLES_FILE: who may sign in and approve…).
set -euo pipefail
COMPONENT=console
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT="${CONCORD_CONSOLE_PORT:-8090}"
TIMEOUT="${CONCORD_CONSOLE_START_TIMEOUT:-60}"
LOG="$LOG_DIR/console.log"
MATCH="services.console"
export CONCORD_KAFKA_BOOTSTRAP="${CONCORD_KAFKA_BOOTSTRAP:-$(kafka_bootstrap_all)}"

start() {
    local pid i
    if pid="$(pid_of console "$MATCH")"; then
        say "already running (pid $pid) on http://127.0.0.1:$PORT/"
        return 0
    fi
    [[ -x "$VENV_DIR/bin/python" ]] || die "$VENV_DIR missing: run deploy/install.sh first"
    port_open "$PORT" && die "port $PORT is already in use by another process (CONCORD_CONSOLE_PORT moves the console)"
    if [[ -s "$LOG" ]]; then mv -f "$LOG" "$LOG.1"; fi
    (
        cd "$REPO_ROOT"
        exec setsid env \
            CONCORD_SERVICE=console \
            CONCORD_CONSOLE_PORT="$PORT" \
            CONCORD_DB_DSN="postgresql://console:local-dev-console@127.0.0.1:$PG_PORT/console" \
            CONCORD_DB_OWNER_DSN="postgresql://console_owner:local-dev-console_owner@127.0.0.1:$PG_PORT/console" \
            CONCORD_PG_PORT="$PG_PORT" \
            CONCORD_ZIPKIN_PORT="$ZIPKIN_PORT" \
            PYTHONUNBUFFERED=1 \
            "$VENV_DIR/bin/python" -m services.console >>"$LOG" 2>&1 </dev/null
    ) &
    pid=$!
    echo "$pid" >"$RUN_DIR/console.pid"
    say "starting on http://127.0.0.1:$PORT/ (pid $pid, log $LOG)"
    for ((i = 0; i < TIMEOUT * 5; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$RUN_DIR/console.pid"
            log_tail "$LOG"
            die "console exited during start-up, see $LOG"
        fi
        if http_ok "$PORT" /health/ready; then
            say "ready: http://127.0.0.1:$PORT/ (sign in as e.g. ap.clerk@example.com / local-dev-ap.clerk)"
            return 0
        fi
        sleep 0.2
    done
    log_tail "$LOG"
    die "not ready after ${TIMEOUT}s (pid $pid still running), see $LOG"
}

status() {
    local pid
    if pid="$(pid_of console "$MATCH")"; then
        if http_ok "$PORT" /health/ready; then
            say "running (pid $pid) on http://127.0.0.1:$PORT/"
        else
            say "process running (pid $pid) but not ready on 127.0.0.1:$PORT"
            return 1
        fi
    else
        say "stopped"
        return 3
    fi
}

case "${1:-}" in
start) start ;;
stop) stop_pid console "$MATCH" 10 ;;
status) status ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
