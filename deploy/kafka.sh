#!/usr/bin/env bash
# Single-node Apache Kafka (KRaft, broker+controller) from Maven Central jars.
#   deploy/kafka.sh start|stop|status
# Env: CONCORD_KAFKA_PORT (9092), CONCORD_KAFKA_CONTROLLER_PORT (9093),
#      CONCORD_KAFKA_HEAP (512m), CONCORD_KAFKA_START_TIMEOUT (90 s),
#      CONCORD_KAFKA_ADMIN_PASSWORD (local-dev-admin),
#      CONCORD_KAFKA_TLS (0; 1: the client listener is SASL_SSL with a CA and a broker
#      certificate made here once, cached in <state>/kafka-tls),
#      CONCORD_STATE_DIR (<repo>/.cache).
# The client listener speaks SASL/SCRAM-SHA-512 only, the authorizer is Kafka's
# StandardAuthorizer with admin its only super user (SPEC §11). The other
# principals' credentials and the ACLs: python -m shared.admin ensure-security
# (deploy/up.sh runs it).
set -euo pipefail
COMPONENT=kafka
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LIBS_DIR="$STATE_DIR/kafka-libs"
DATA_DIR="$STATE_DIR/kafka-data"
PROPS="$RUN_DIR/kafka-server.properties"
ADMIN_PLAIN_PROPS="$RUN_DIR/kafka-admin-controller.properties"
LOG="$LOG_DIR/kafka.log"
HEAP="${CONCORD_KAFKA_HEAP:-512m}"
TIMEOUT="${CONCORD_KAFKA_START_TIMEOUT:-90}"
ADMIN_PASSWORD="${CONCORD_KAFKA_ADMIN_PASSWORD:-local-dev-admin}"
TLS_DIR="$STATE_DIR/kafka-tls"
MATCH="kafka.Kafka"

JAVA_ARGS=("-Xms$HEAP" "-Xmx$HEAP" -XX:+UseG1GC -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$DEPLOY_DIR/kafka/log4j2.yaml"
    "-Dkafka.logs.dir=$LOG_DIR" -cp "$LIBS_DIR/*")

java_cmd() { java "${JAVA_ARGS[@]}" "$@"; }

client_protocol() { if [[ "${CONCORD_KAFKA_TLS:-0}" == 1 ]]; then echo SASL_SSL; else echo SASL_PLAINTEXT; fi; }

# A CA, and a certificate for 127.0.0.1/localhost signed by it, made once with openssl.
ensure_tls() {
    [[ -s "$TLS_DIR/ca.pem" && -s "$TLS_DIR/broker-keystore.pem" ]] && return 0
    command -v openssl >/dev/null || die "openssl is needed for CONCORD_KAFKA_TLS=1 (apt-get install openssl)"
    say "making a CA and a broker certificate in $TLS_DIR"
    (umask 077 && mkdir -p "$TLS_DIR")
    "$DEPLOY_DIR/kafka/make-certs.sh" "$TLS_DIR" >>"$LOG_DIR/kafka-tls.log" 2>&1 ||
        die "making the TLS certificates failed, see $LOG_DIR/kafka-tls.log"
}

# The rendered files hold the admin password: readable by their owner only.
# `render_props upgrade`: the one-off upgrade of a v1 log directory (see upgrade_v1_once).
render_props() {
    local protocol mode="${1:-}"
    protocol="$(client_protocol)"
    (
        umask 077
        sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" \
            -e "s|@CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
            -e "s|@DATA_DIR@|$DATA_DIR|g" \
            -e "s|@CLIENT_PROTOCOL@|$protocol|g" \
            -e "s|@ADMIN_PASSWORD@|$ADMIN_PASSWORD|g" \
            "$DEPLOY_DIR/kafka/server.properties" >"$PROPS.tmp"
        if [[ "$protocol" == SASL_SSL ]]; then
            cat >>"$PROPS.tmp" <<EOF

# CONCORD_KAFKA_TLS=1: the client listener is SASL_SSL with a certificate from $TLS_DIR.
listener.name.client.ssl.keystore.type=PEM
listener.name.client.ssl.keystore.location=$TLS_DIR/broker-keystore.pem
listener.name.client.ssl.truststore.type=PEM
listener.name.client.ssl.truststore.location=$TLS_DIR/ca.pem
ssl.endpoint.identification.algorithm=https
EOF
        fi
        if [[ "$mode" == upgrade ]]; then
            cat >>"$PROPS.tmp" <<EOF

# One-off upgrade of a log directory made before SASL: admin may also use SASL/PLAIN
# until its SCRAM credential exists (deploy/kafka.sh upgrade_v1_once).
listener.name.client.sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
listener.name.client.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$ADMIN_PASSWORD" user_admin="$ADMIN_PASSWORD";
sasl.mechanism.inter.broker.protocol=PLAIN
EOF
        fi
        mv "$PROPS.tmp" "$PROPS"
        cat >"$ADMIN_PLAIN_PROPS" <<EOF
security.protocol=$protocol
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$ADMIN_PASSWORD";
EOF
    )
}

# Format once: meta.properties marks a formatted log dir. We use the static
# controller.quorum.voters form (format without --standalone); verified with
# 4.1.1, and it keeps working if the controller port is changed later.
# admin's SCRAM credential is written into the metadata at format time.
format_once() {
    [[ -f "$DATA_DIR/meta.properties" ]] && return 0
    local cluster_id
    mkdir -p "$DATA_DIR"
    cluster_id="$(java_cmd kafka.tools.StorageTool random-uuid 2>>"$LOG" | tail -n1)"
    say "formatting $DATA_DIR (cluster id $cluster_id)"
    java_cmd kafka.tools.StorageTool format -t "$cluster_id" -c "$PROPS" \
        --add-scram "SCRAM-SHA-512=[name=admin,password=$ADMIN_PASSWORD]" >>"$LOG" 2>&1 ||
        {
            log_tail "$LOG"
            die "storage format failed, see $LOG"
        }
    touch "$DATA_DIR/.concord-scram"
}

# A log directory formatted before authentication existed (a v1 stack) has no SCRAM
# credential for admin, and Kafka accepts SCRAM changes only through a broker (not
# through the controller). So the upgrade starts the broker once with SASL/PLAIN for
# admin allowed on the client listener as well (static JAAS user, loopback), adds
# admin's SCRAM-SHA-512 credential with Kafka's ConfigCommand, stops it, and from then
# on the broker runs SCRAM-only. The marker file records that it was done; every
# other principal is added by ensure-security as admin.
upgrade_v1_once() {
    [[ -f "$DATA_DIR/.concord-scram" ]] && return 0
    local pid offset i
    say "upgrading $DATA_DIR (made before SASL): adding admin's SCRAM-SHA-512 credential"
    render_props upgrade
    offset="$(stat -c %s "$LOG" 2>/dev/null || echo 0)"
    pid="$(launch_broker)"
    echo "$pid" >"$RUN_DIR/kafka.pid"
    for ((i = 0; i < TIMEOUT * 5; i++)); do
        kill -0 "$pid" 2>/dev/null || {
            log_tail "$LOG"
            die "broker exited during the upgrade, see $LOG"
        }
        tail -c "+$((offset + 1))" "$LOG" | grep -q 'Kafka Server started' && break
        sleep 0.2
    done
    for ((i = 0; i < 30; i++)); do
        if java_cmd kafka.admin.ConfigCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" \
            --command-config "$ADMIN_PLAIN_PROPS" --alter --entity-type users --entity-name admin \
            --add-config "SCRAM-SHA-512=[password=$ADMIN_PASSWORD]" >>"$LOG" 2>&1; then
            touch "$DATA_DIR/.concord-scram"
            break
        fi
        sleep 1
    done
    stop_pid kafka "$MATCH" 30 >/dev/null
    [[ -f "$DATA_DIR/.concord-scram" ]] || die "could not add admin's SCRAM credential, see $LOG"
    render_props
    say "upgraded: the broker now accepts SCRAM-SHA-512 only"
}

# Starts the JVM in its own session (a Ctrl-C in the calling terminal does not reach it).
launch_broker() {
    (
        cd "$STATE_DIR"
        setsid java "${JAVA_ARGS[@]}" kafka.Kafka "$PROPS" >>"$LOG" 2>&1 </dev/null &
        echo $!
    )
}

# Answers a metadata request as admin (SASL/SCRAM): list topics with aiokafka when available.
metadata_ok() {
    local py
    py="$(helper_python)"
    [[ -n "$py" ]] || return 0
    (
        cd "$REPO_ROOT"
        CONCORD_KAFKA_BOOTSTRAP="127.0.0.1:$KAFKA_PORT" CONCORD_KAFKA_USERNAME=admin \
            CONCORD_KAFKA_PASSWORD="$ADMIN_PASSWORD" CONCORD_KAFKA_SECURITY_PROTOCOL="$(client_protocol)" \
            CONCORD_KAFKA_CA_FILE="$TLS_DIR/ca.pem" "$py" - <<'EOF' >/dev/null 2>&1
import asyncio, sys
try:
    from aiokafka.admin import AIOKafkaAdminClient
    from shared.kafka_auth import client_options
    from shared.settings import Settings
except ImportError:
    sys.exit(0)  # no client here; the log line and open port must do
async def main() -> None:
    admin = AIOKafkaAdminClient(**client_options(Settings()), request_timeout_ms=3000)
    await admin.start()
    try:
        await admin.list_topics()
    finally:
        await admin.close()
asyncio.run(main())
EOF
    )
}

start() {
    local pid offset i
    if pid="$(pid_of kafka "$MATCH")"; then
        say "already running (pid $pid) on 127.0.0.1:$KAFKA_PORT ($(client_protocol))"
        return 0
    fi
    [[ -n "$(ls "$LIBS_DIR"/kafka_2.13-*.jar 2>/dev/null)" ]] ||
        die "no Kafka jars in $LIBS_DIR: run deploy/install.sh first"
    command -v java >/dev/null || die "java not found: run deploy/install.sh first"
    if port_open "$KAFKA_PORT" || port_open "$KAFKA_CONTROLLER_PORT"; then
        die "port $KAFKA_PORT or $KAFKA_CONTROLLER_PORT is already in use by another process"
    fi
    [[ "$(client_protocol)" == SASL_SSL ]] && ensure_tls
    render_props
    # Keep one previous log; a fresh file makes "did THIS start succeed" easy to read.
    if [[ -s "$LOG" ]]; then mv -f "$LOG" "$LOG.1"; fi
    format_once
    upgrade_v1_once
    offset="$(stat -c %s "$LOG" 2>/dev/null || echo 0)"
    say "starting broker on 127.0.0.1:$KAFKA_PORT, $(client_protocol) SCRAM-SHA-512 (log: $LOG)"
    pid="$(launch_broker)"
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
            say "running (pid $pid) on 127.0.0.1:$KAFKA_PORT ($(client_protocol), SCRAM-SHA-512)"
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
