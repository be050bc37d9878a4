#!/usr/bin/env bash
# Zipkin (the io.zipkin:zipkin-server exec jar from Maven Central) on the JDK that runs Kafka,
# receiving the services' spans (SPEC §14.1).
#   deploy/zipkin.sh start|stop|status
# Env: CONCORD_ZIPKIN_PORT (9411), CONCORD_ZIPKIN_HEAP (256m), CONCORD_ZIPKIN_MAX_SPANS (100000),
#      CONCORD_ZIPKIN_START_TIMEOUT (120 s), CONCORD_STATE_DIR (<repo>/.cache).
# In-memory storage: traces are gone after a restart, and the oldest go first past MAX_SPANS.
set -euo pipefail
COMPONENT=zipkin
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LIBS_DIR="$STATE_DIR/zipkin-libs"
LOG="$LOG_DIR/zipkin.log"
HEAP="${CONCORD_ZIPKIN_HEAP:-256m}"
MAX_SPANS="${CONCORD_ZIPKIN_MAX_SPANS:-100000}"
TIMEOUT="${CONCORD_ZIPKIN_START_TIMEOUT:-120}"
MATCH="zipkin-server"

start() {
    local pid jar i
    if pid="$(pid_of zipkin "$MATCH")"; then
        say "already running (pid $pid) on http://127.0.0.1:$ZIPKIN_PORT/zipkin/"
        return 0
    fi
    jar="$(compgen -G "$LIBS_DIR/zipkin-server-*-exec.jar" | head -n1)" ||
        die "no Zipkin jar in $LIBS_DIR: run deploy/install.sh first"
    command -v java >/dev/null || die "java not found: run deploy/install.sh first"
    port_open "$ZIPKIN_PORT" && die "port $ZIPKIN_PORT is already in use by another process"
    if [[ -s "$LOG" ]]; then mv -f "$LOG" "$LOG.1"; fi
    say "starting on http://127.0.0.1:$ZIPKIN_PORT/zipkin/ (heap $HEAP, log: $LOG)"
    # C1 only and lazy bean creation: start-up went from 33 s to 10 s on this 2-core machine; a
    # trace viewer for one developer never needs C2's peak throughput. Serial GC: the smallest.
    STORAGE_TYPE=mem MEM_MAX_SPANS="$MAX_SPANS" setsid java "-Xms64m" "-Xmx$HEAP" -XX:+UseSerialGC \
        -XX:TieredStopAtLevel=1 -Xss512k -Djava.awt.headless=true -jar "$jar" \
        --server.address=127.0.0.1 --server.port="$ZIPKIN_PORT" --spring.main.lazy-initialization=true \
        >>"$LOG" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$RUN_DIR/zipkin.pid"
    for ((i = 0; i < TIMEOUT * 5; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$RUN_DIR/zipkin.pid"
            log_tail "$LOG"
            die "zipkin exited during start-up, see $LOG"
        fi
        if http_ok "$ZIPKIN_PORT" /health; then
            say "ready (pid $pid)"
            return 0
        fi
        sleep 0.2
    done
    log_tail "$LOG"
    die "not ready after ${TIMEOUT}s (pid $pid still running), see $LOG"
}

status() {
    local pid
    if pid="$(pid_of zipkin "$MATCH")"; then
        if http_ok "$ZIPKIN_PORT" /health; then
            say "running (pid $pid) on http://127.0.0.1:$ZIPKIN_PORT/zipkin/"
        else
            say "process running (pid $pid) but not answering on 127.0.0.1:$ZIPKIN_PORT"
            return 1
        fi
    else
        say "stopped"
        return 3
    fi
}

case "${1:-}" in
start) start ;;
stop) stop_pid zipkin "$MATCH" 15 ;;
status) status ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
