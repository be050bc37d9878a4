#!/usr/bin/env bash
# Single-node Apache Kafka (KRaft, broker+controller) from Maven Central jars.
#   deploy/kafka.sh start|stop|status
# Env: CONCORD_KAFKA_PORT (9092), CONCORD_KAFKA_CONTROLLER_PORT (9093),
#      CONCORD_KAFKA_HEAP (512m), CONCORD_KAFKA_START_TIMEOUT (90 s),
#      CONCORD_STATE_DIR (<repo>/.cache).
set -euo pipefail
COMPONENT=kafka
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LIBS_DIR="$STATE_DIR/kafka-libs"
DATA_DIR="$STATE_DIR/kafka-data"
PROPS="$RUN_DIR/kafka-server.properties"
LOG="$LOG_DIR/kafka.log"
HEAP="${CONCORD_KAFKA_HEAP:-512m}"
TIMEOUT="${CONCORD_KAFKA_START_TIMEOUT:-90}"
MATCH="kafka.Kafka"

JAVA_ARGS=("-Xms$HEAP" "-Xmx$HEAP" -XX:+UseG1GC -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$DEPLOY_DIR/kafka/log4j2.yaml"
    "-Dkafka.logs.dir=$LOG_DIR" -cp "$LIBS_DIR/*")

java_cmd() { java "${JAVA_ARGS[@]}" "$@"; }

render_props() {
    sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" \
        -e "s|@CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
        -e "s|@DATA_DIR@|$DATA_DIR|g" \
        "$DEPLOY_DIR/kafka/server.properties" >"$PROPS.tmp"
    mv "$PROPS.tmp" "$PROPS"
}

# Format once: meta.properties marks a formatted log dir. We use the static
# controller.quorum.voters form (format without --standalone); verified with
# 4.1.1, and it keeps working if the controller port is changed later.
format_once() {
    [[ -f "$DATA_DIR/meta.properties" ]] && return 0
    local cluster_id
    mkdir -p "$DATA_DIR"
    cluster_id="$(java_cmd kafka.tools.StorageTool random-uuid 2>>"$LOG" | tail -n1)"
    say "formatting $DATA_DIR (cluster id $cluster_id)"
    java_cmd kafka.tools.StorageTool format -t "$cluster_id" -c "$PROPS" >>"$LOG" 2>&1 ||
        {
            log_tail "$LOG"
            die "storage format failed, see $LOG"
        }
}

# Answers a metadata request: list topics with aiokafka when available.
metadata_ok() {
    local py
    py="$(helper_python)"
    [[ -n "$py" ]] || return 0
    "$py" - "127.0.0.1:$KAFKA_PORT" <<'EOF' >/dev/null 2>&1
import asyncio, sys
try:
    from aiokafka.admin import AIOKafkaAdminClient
except ImportError:
    sys.exit(0)  # no client here; the log line and open port must do
async def main() -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=sys.argv[1], request_timeout_ms=3000)
    await admin.start()
    try:
        await admin.list_topics()
    finally:
        await admin.close()
asyncio.run(main())
EOF
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() {
    local pid offset i
    if pid="$(pid_of kafka "$MATCH")"; then
        say "already running (pid $pid) on 127.0.0.1:$KAFKA_PORT"
        return 0
    fi
    [[ -n "$(ls "$LIBS_DIR"/kafka_2.13-*.jar 2>/dev/null)" ]] ||
        die "no Kafka jars in $LIBS_DIR: run deploy/install.sh first"
    command -v java >/dev/null || die "java not found: run deploy/install.sh first"
    if port_open "$KAFKA_PORT" || port_open "$KAFKA_CONTROLLER_PORT"; then
        die "port $KAFKA_PORT or $KAFKA_CONTROLLER_PORT is already in use by another process"
    fi
    render_props
    # Keep one previous log; a fresh file makes "did THIS start succeed" easy to read.
    if [[ -s "$LOG" ]]; then mv -f "$LOG" "$LOG.1"; fi
    format_once
    offset="$(stat -c %s "$LOG" 2>/dev/null || echo 0)"
    say "starting broker on 127.0.0.1:$KAFKA_PORT (log: $LOG)"
    cd "$STATE_DIR"
    # setsid: own session, so a Ctrl-C in the calling terminal does not reach it.
    setsid java "${JAVA_ARGS[@]}" kafka.Kafka "$PROPS" >>"$LOG" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$RUN_DIR/kafka.pid"
    for ((i = 0; i < TIMEOUT * 5; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$RUN_DIR/kafka.pid"
            log_tail "$LOG"
            die "broker exited during start-up, see $LOG"
        fi
        if tail -c "+$((offset + 1))" "$LOG" | grep -q 'Kafka Server started' && metadata_ok; then
            say "ready (pid $pid)"
            return 0
        fi
        sleep 0.2
    done
    log_tail "$LOG"
    die "broker not ready after ${TIMEOUT}s (pid $pid still running), see $LOG"
}

status() {
    local pid
    if pid="$(pid_of kafka "$MATCH")"; then
        if metadata_ok; then
            say "running (pid $pid) on 127.0.0.1:$KAFKA_PORT"
        else
            say "process running (pid $pid) but not answering on 127.0.0.1:$KAFKA_PORT"
            return 1
        fi
    else
        say "stopped"
        return 3
    fi
}

case "${1:-}" in
start) start ;;
stop) stop_pid kafka "$MATCH" "${CONCORD_KAFKA_STOP_TIMEOUT:-30}" ;;
status) status ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
