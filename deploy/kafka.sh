#!/usr/bin/env bash
# Apache Kafka (KRaft, combined broker+controller nodes) from Maven Central jars: one node, or a
# three-node cluster with CONCORD_KAFKA_BROKERS=3.
#   deploy/kafka.sh start|stop|status|pid NODE
# `start` starts whichever node is not running (a node the chaos run killed comes back alone);
# `stop` stops every node there is a pid file for, whatever CONCORD_KAFKA_BROKERS says now.
# Env: CONCORD_KAFKA_BROKERS (1 or 3), CONCORD_KAFKA_PORT (9092), CONCORD_KAFKA_CONTROLLER_PORT
#      (9093; node i of a cluster adds 2(i-1) to both), CONCORD_KAFKA_HEAP (512m; 384m per node
#      of a cluster), CONCORD_KAFKA_START_TIMEOUT (90 s),
#      CONCORD_KAFKA_ADMIN_PASSWORD (local-dev-admin),
#      CONCORD_KAFKA_TLS (0; 1: the client listener is SASL_SSL with a CA and a broker
#      certificate made here once, cached in <state>/kafka-tls),
#      CONCORD_KAFKA_SWITCH (0; 1: `start` stops the other shape, one node or three, if it runs),
#      CONCORD_STATE_DIR (<repo>/.cache).
# The client listener speaks SASL/SCRAM-SHA-512 only, the authorizer is Kafka's
# StandardAuthorizer with admin its only super user (SPEC §11). The other
# principals' credentials and the ACLs: python -m shared.admin ensure-security
# (deploy/up.sh runs it).
set -euo pipefail
COMPONENT=kafka
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LIBS_DIR="$STATE_DIR/kafka-libs"
CLUSTER_DIR="$STATE_DIR/kafka-cluster"
ADMIN_PLAIN_PROPS="$RUN_DIR/kafka-admin-controller.properties"
if ((KAFKA_BROKERS == 1)); then HEAP="${CONCORD_KAFKA_HEAP:-512m}"; else HEAP="${CONCORD_KAFKA_HEAP:-384m}"; fi
TIMEOUT="${CONCORD_KAFKA_START_TIMEOUT:-90}"
ADMIN_PASSWORD="${CONCORD_KAFKA_ADMIN_PASSWORD:-local-dev-admin}"
TLS_DIR="$STATE_DIR/kafka-tls"
# Every node name a pid file may exist for (stop and status find them all).
ALL_NODES=(kafka kafka-1 kafka-2 kafka-3)

# One node keeps the names and the data directory of the single broker it always was
# (kafka, kafka-data); a cluster's nodes are kafka-1..3 with data in kafka-cluster/node-<i>.
node_name() { if ((KAFKA_BROKERS == 1)); then echo kafka; else echo "kafka-$1"; fi; }
node_data() { if ((KAFKA_BROKERS == 1)); then echo "$STATE_DIR/kafka-data"; else echo "$CLUSTER_DIR/node-$1"; fi; }
props_of() { echo "$RUN_DIR/$1-server.properties"; }
log_of() { echo "$LOG_DIR/$1.log"; }
match_of() { echo "kafka.Kafka $(props_of "$1")"; }
node_index() { if [[ "$1" == kafka ]]; then echo 1; else echo "${1#kafka-}"; fi; }

# -XX:TieredStopAtLevel=1: the JIT compiles with C1 only. C2's compiler threads were the broker's
# largest CPU item for minutes after every start (3-5 ms per flow at 40 flows/s, 56 ms/s beside the
# idle services), and the request paths compiled by C1 cost no more CPU per flow than C2's: the
# broker's work is mostly system calls (docs/performance.md, "Stop 24").
java_args() {
    JAVA_ARGS=("-Xms$HEAP" "-Xmx$HEAP" -XX:+UseG1GC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true
        "-Dlog4j2.configurationFile=$DEPLOY_DIR/kafka/log4j2.yaml"
        "-Dkafka.logs.dir=$LOG_DIR" "-Dconcord.kafka.node=$1" -cp "$LIBS_DIR/*")
}
java_cmd() {
    local node="$1"
    shift
    java_args "$node"
    java "${JAVA_ARGS[@]}" "$@"
}

client_protocol() { if [[ "${CONCORD_KAFKA_TLS:-0}" == 1 ]]; then echo SASL_SSL; else echo SASL_PLAINTEXT; fi; }

voters() {
    local i out=""
    for ((i = 1; i <= KAFKA_BROKERS; i++)); do out+="${out:+,}$i@127.0.0.1:$(kafka_controller_port "$i")"; done
    echo "$out"
}

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
# `render_props 1 upgrade`: the one-off upgrade of a v1 log directory (see upgrade_v1_once).
render_props() {
    local i="$1" mode="${2:-}" node props protocol replication=1 min_isr=1
    node="$(node_name "$i")"
    props="$(props_of "$node")"
    protocol="$(client_protocol)"
    if ((KAFKA_BROKERS == 3)); then
        replication=3
        min_isr=2
    fi
    (
        umask 077
        sed -e "s|@KAFKA_PORT@|$(kafka_client_port "$i")|g" \
            -e "s|@CONTROLLER_PORT@|$(kafka_controller_port "$i")|g" \
            -e "s|@NODE_ID@|$i|g" \
            -e "s|@VOTERS@|$(voters)|g" \
            -e "s|@REPLICATION@|$replication|g" \
            -e "s|@MIN_ISR@|$min_isr|g" \
            -e "s|@DATA_DIR@|$(node_data "$i")|g" \
            -e "s|@CLIENT_PROTOCOL@|$protocol|g" \
            -e "s|@ADMIN_PASSWORD@|$ADMIN_PASSWORD|g" \
            "$DEPLOY_DIR/kafka/server.properties" >"$props.tmp"
        if [[ "$protocol" == SASL_SSL ]]; then
            cat >>"$props.tmp" <<EOF

# CONCORD_KAFKA_TLS=1: the client listener is SASL_SSL with a certificate from $TLS_DIR.
listener.name.client.ssl.keystore.type=PEM
listener.name.client.ssl.keystore.location=$TLS_DIR/broker-keystore.pem
listener.name.client.ssl.truststore.type=PEM
listener.name.client.ssl.truststore.location=$TLS_DIR/ca.pem
ssl.endpoint.identification.algorithm=https
EOF
        fi
        if [[ "$mode" == upgrade ]]; then
            cat >>"$props.tmp" <<EOF

# One-off upgrade of a log directory made before SASL: admin may also use SASL/PLAIN
# until its SCRAM credential exists (deploy/kafka.sh upgrade_v1_once).
listener.name.client.sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
listener.name.client.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$ADMIN_PASSWORD" user_admin="$ADMIN_PASSWORD";
sasl.mechanism.inter.broker.protocol=PLAIN
EOF
        fi
        mv "$props.tmp" "$props"
        cat >"$ADMIN_PLAIN_PROPS" <<EOF
security.protocol=$protocol
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$ADMIN_PASSWORD";
EOF
    )
}

# The cluster id: one for every node of the cluster, made once.
cluster_id() {
    local file="$CLUSTER_DIR/cluster-id" node="$1"
    if ((KAFKA_BROKERS == 1)); then
        java_cmd "$node" kafka.tools.StorageTool random-uuid 2>>"$(log_of "$node")" | tail -n1
        return
    fi
    mkdir -p "$CLUSTER_DIR"
    if [[ ! -s "$file" ]]; then
        java_cmd "$node" kafka.tools.StorageTool random-uuid 2>>"$(log_of "$node")" | tail -n1 >"$file.tmp"
        mv "$file.tmp" "$file"
    fi
    cat "$file"
}

# Format once: meta.properties marks a formatted log dir. We use the static
# controller.quorum.voters form (format without --standalone, on every node with the same
# cluster id); verified with 4.1.1, and it keeps working if the controller port is changed later.
# admin's SCRAM credential is written into the metadata at format time (every node: whichever
# becomes the first metadata leader commits it).
format_once() {
    local i="$1" node data id log
    node="$(node_name "$i")"
    data="$(node_data "$i")"
    log="$(log_of "$node")"
    [[ -f "$data/meta.properties" ]] && return 0
    mkdir -p "$data"
    id="$(cluster_id "$node")"
    say "formatting $data (cluster id $id, node $i)"
    java_cmd "$node" kafka.tools.StorageTool format -t "$id" -c "$(props_of "$node")" \
        --add-scram "SCRAM-SHA-512=[name=admin,password=$ADMIN_PASSWORD]" >>"$log" 2>&1 ||
        {
            log_tail "$log"
            die "storage format failed, see $log"
        }
    touch "$data/.concord-scram"
}

# A log directory formatted before authentication existed (a v1 single broker) has no SCRAM
# credential for admin, and Kafka accepts SCRAM changes only through a broker (the controller
# answers UnsupportedEndpointTypeException). So the upgrade starts the broker once with SASL/PLAIN
# for admin also allowed on the client listener (static JAAS user, loopback), adds admin's
# SCRAM-SHA-512 credential with Kafka's ConfigCommand, stops it, and from then on the broker runs
# SCRAM-only. The marker file records that it was done; every other principal is added by
# ensure-security as admin. A cluster's nodes are always formatted with --add-scram.
upgrade_v1_once() {
    local data log pid t
    data="$(node_data 1)"
    log="$(log_of kafka)"
    ((KAFKA_BROKERS == 1)) || return 0
    [[ -f "$data/meta.properties" && ! -f "$data/.concord-scram" ]] || return 0
    say "upgrading $data (made before SASL): adding admin's SCRAM-SHA-512 credential"
    render_props 1 upgrade
    launch 1
    pid="$(<"$RUN_DIR/kafka.pid")"
    for ((t = 0; t < TIMEOUT * 5; t++)); do
        node_started kafka "$pid" && break
        sleep 0.2
    done
    for ((t = 0; t < 30; t++)); do
        if java_cmd kafka kafka.admin.ConfigCommand --bootstrap-server "127.0.0.1:$(kafka_client_port 1)" \
            --command-config "$ADMIN_PLAIN_PROPS" --alter --entity-type users --entity-name admin \
            --add-config "SCRAM-SHA-512=[password=$ADMIN_PASSWORD]" >>"$log" 2>&1; then
            touch "$data/.concord-scram"
            break
        fi
        sleep 1
    done
    stop_pid kafka "$(match_of kafka)" 30 >/dev/null
    [[ -f "$data/.concord-scram" ]] || die "could not add admin's SCRAM credential, see $log"
    mv -f "$log" "$log.upgrade" # the next start's "Kafka Server started" must be its own
    render_props 1
    say "upgraded: the broker now accepts SCRAM-SHA-512 only"
}

# Node at this client port answers a metadata request as admin (SASL/SCRAM) and, with a second
# argument, reports that many live brokers.
metadata_ok() {
    local port="$1" want="${2:-0}" py
    py="$(helper_python)"
    [[ -n "$py" ]] || return 0
    (
        cd "$REPO_ROOT"
        CONCORD_KAFKA_BOOTSTRAP="127.0.0.1:$port" CONCORD_KAFKA_USERNAME=admin \
            CONCORD_KAFKA_PASSWORD="$ADMIN_PASSWORD" CONCORD_KAFKA_SECURITY_PROTOCOL="$(client_protocol)" \
            CONCORD_KAFKA_CA_FILE="$TLS_DIR/ca.pem" WANT_BROKERS="$want" "$py" - <<'EOF' >/dev/null 2>&1
import asyncio, os, sys
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
        want = int(os.environ["WANT_BROKERS"])
        if want and len((await admin.describe_cluster())["brokers"]) < want:
            sys.exit(1)
    finally:
        await admin.close()
asyncio.run(main())
EOF
    )
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The other shape must not be running: a single broker and a cluster share the first ports.
other_shape_running() {
    local n
    if ((KAFKA_BROKERS == 1)); then
        for n in kafka-1 kafka-2 kafka-3; do pid_of "$n" "$(match_of "$n")" >/dev/null && echo "$n"; done
    else
        pid_of kafka "$(match_of kafka)" >/dev/null && echo kafka
    fi
    return 0
}

# Launch one node in the background; prints nothing, records the pid and the log offset.
launch() {
    local i="$1" node log pid
    node="$(node_name "$i")"
    log="$(log_of "$node")"
    if port_open "$(kafka_client_port "$i")" || port_open "$(kafka_controller_port "$i")"; then
        die "port $(kafka_client_port "$i") or $(kafka_controller_port "$i") ($node) is already in use by another process"
    fi
    say "starting $node on 127.0.0.1:$(kafka_client_port "$i") (controller :$(kafka_controller_port "$i")), $(client_protocol) SCRAM-SHA-512 (log: $log)"
    (
        cd "$STATE_DIR"
        # setsid: own session, so a Ctrl-C in the calling terminal does not reach it.
        java_args "$node"
        exec setsid java "${JAVA_ARGS[@]}" kafka.Kafka "$(props_of "$node")" >>"$log" 2>&1 </dev/null
    ) &
    pid=$!
    echo "$pid" >"$RUN_DIR/$node.pid"
}

node_started() {
    local node="$1" pid="$2"
    if ! kill -0 "$pid" 2>/dev/null; then
        rm -f "$RUN_DIR/$node.pid"
        log_tail "$(log_of "$node")"
        die "$node exited during start-up, see $(log_of "$node")"
    fi
    grep -q 'Kafka Server started' "$(log_of "$node")" 2>/dev/null
}

start() {
    local i t node pid pending=() still=() others
    [[ -n "$(ls "$LIBS_DIR"/kafka_2.13-*.jar 2>/dev/null)" ]] ||
        die "no Kafka jars in $LIBS_DIR: run deploy/install.sh first"
    command -v java >/dev/null || die "java not found: run deploy/install.sh first"
    others="$(other_shape_running)"
    if [[ -n "$others" && "${CONCORD_KAFKA_SWITCH:-0}" == 1 ]]; then
        say "CONCORD_KAFKA_SWITCH=1: stopping $(echo $others) to start $KAFKA_BROKERS node(s) instead"
        stop
        others=""
    fi
    [[ -z "$others" ]] || die "CONCORD_KAFKA_BROKERS=$KAFKA_BROKERS but $(echo $others) run(s): deploy/kafka.sh stop first (or CONCORD_KAFKA_SWITCH=1)"
    [[ "$(client_protocol)" == SASL_SSL ]] && ensure_tls
    for ((i = 1; i <= KAFKA_BROKERS; i++)); do
        node="$(node_name "$i")"
        if pid="$(pid_of "$node" "$(match_of "$node")")"; then
            say "$node already running (pid $pid) on 127.0.0.1:$(kafka_client_port "$i") ($(client_protocol))"
            continue
        fi
        pending+=("$i")
    done
    ((${#pending[@]})) || return 0
    # Render and format first (the nodes of a new cluster in parallel: each format is a JVM).
    ((KAFKA_BROKERS == 1)) || cluster_id "$(node_name 1)" >/dev/null
    for i in "${pending[@]}"; do
        node="$(node_name "$i")"
        render_props "$i"
        # Keep one previous log; a fresh file makes "did THIS start succeed" easy to read.
        if [[ -s "$(log_of "$node")" ]]; then mv -f "$(log_of "$node")" "$(log_of "$node").1"; fi
        format_once "$i" &
    done
    wait
    upgrade_v1_once
    for i in "${pending[@]}"; do
        [[ -f "$(node_data "$i")/meta.properties" ]] || die "$(node_name "$i") was not formatted, see $(log_of "$(node_name "$i")")"
        launch "$i"
    done
    # The nodes of a cluster start together: none is up before a quorum of controllers is.
    for ((t = 0; t < TIMEOUT * 5; t++)); do
        still=()
        for i in "${pending[@]}"; do
            node="$(node_name "$i")"
            pid="$(<"$RUN_DIR/$node.pid")"
            if node_started "$node" "$pid" && metadata_ok "$(kafka_client_port "$i")" "$KAFKA_BROKERS"; then
                say "$node ready (pid $pid)"
            else
                still+=("$i")
            fi
        done
        ((${#still[@]})) || return 0
        pending=("${still[@]}")
        sleep 0.2
    done
    for i in "${pending[@]}"; do log_tail "$(log_of "$(node_name "$i")")"; done
    die "not ready after ${TIMEOUT}s: ${pending[*]/#/node }"
}

stop() {
    local node
    # In parallel: a node of a cluster shutting down alone waits for the others to take over its
    # partitions, and the last ones would wait for a quorum that is already gone.
    for node in "${ALL_NODES[@]}"; do
        [[ -e "$RUN_DIR/$node.pid" ]] || continue
        stop_pid "$node" "$(match_of "$node")" "${CONCORD_KAFKA_STOP_TIMEOUT:-30}" &
    done
    wait
}

status() {
    local node pid i port ctl rc=0 found=0
    for node in "${ALL_NODES[@]}"; do
        i="$(node_index "$node")"
        [[ "$node" == kafka ]] && ((KAFKA_BROKERS == 3)) && [[ ! -e "$RUN_DIR/kafka.pid" ]] && continue
        [[ "$node" != kafka ]] && ((KAFKA_BROKERS == 1)) && [[ ! -e "$RUN_DIR/$node.pid" ]] && continue
        found=1
        port="$(kafka_client_port "$i")"
        ctl="$(kafka_controller_port "$i")"
        if pid="$(pid_of "$node" "$(match_of "$node")")"; then
            if metadata_ok "$port"; then
                say "$node running (pid $pid) on 127.0.0.1:$port, controller :$ctl ($(client_protocol), SCRAM-SHA-512)"
            else
                say "$node process running (pid $pid) but not answering on 127.0.0.1:$port"
                rc=1
            fi
        else
            say "$node stopped (127.0.0.1:$port)"
            rc=3
        fi
    done
    ((found)) || say "stopped"
    return "$rc"
}

# The pid of a running node (for the chaos run's SIGKILL and SIGSTOP); exit 1 if it is not running.
pid_cmd() {
    local node="${1:-}"
    [[ -n "$node" ]] || die "usage: $0 pid NODE (kafka, kafka-1, kafka-2, kafka-3)"
    pid_of "$node" "$(match_of "$node")"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
pid) pid_cmd "${2:-}" ;;
*)
    echo "usage: $0 start|stop|status|pid NODE" >&2
    exit 2
    ;;
esac
