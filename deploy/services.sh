#!/usr/bin/env bash
# The five Concord services as background processes, CONCORD_SERVICE_REPLICAS (1) of each.
#   deploy/services.sh start|stop|status [name...]    (default: all five)
# A name is a service (every replica of it) or one replica (`payout_release-2`). Replica 1 of a
# service is named like the service; replica r >= 2 is `<name>-r`, with its own pid file, log and
# health port. They share the service's database and consumer group (Kafka spreads the partitions).
# `stop` and `status` also find replicas beyond CONCORD_SERVICE_REPLICAS that still run.
# Each runs `.venv/bin/python -m services.<name>` from the repo root with
#   CONCORD_SERVICE=<name>
#   CONCORD_DB_DSN=postgresql://<name>:local-dev-<name>@127.0.0.1:$CONCORD_PG_PORT/<name>
#   CONCORD_DB_OWNER_DSN=postgresql://<name>_owner:local-dev-<name>_owner@127.0.0.1:$CONCORD_PG_PORT/<name>
#   CONCORD_HEALTH_PORT=8081..8086 (intake, matching, compliance_gate, payout_release, ledger,
#     bank_gateway;
#     CONCORD_HEALTH_PORT_BASE moves them, e.g. 18081 for a second stack on one machine);
#     replica r adds 10(r-1): 8091..8095 for the second replicas, and so on (8086..8090 stay
#     free for the next services and the console's 8090)
#   CONCORD_KAFKA_BOOTSTRAP (kept if set, else 127.0.0.1:$CONCORD_KAFKA_PORT)
#   CONCORD_OTEL_EXPORTER=zipkin (kept if set) to the local Zipkin on $CONCORD_ZIPKIN_PORT (9411),
#     spans batched for at most OTEL_BSP_SCHEDULE_DELAY=1000 ms (kept if set)
#   CONCORD_BANK_SANDBOX=1 (kept if set): bank_gateway's sandbox accounts (SPEC §12.4); `start`
#     creates its outbox and inbox (with processed/ and rejected/) under .cache/bank/
# and every other CONCORD_* / OTEL_* variable of the caller's environment.
# Env: CONCORD_SERVICE_START_TIMEOUT (60 s), CONCORD_SERVICE_STOP_TIMEOUT (10 s).
set -euo pipefail
COMPONENT=services
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

START_TIMEOUT="${CONCORD_SERVICE_START_TIMEOUT:-60}"
STOP_TIMEOUT="${CONCORD_SERVICE_STOP_TIMEOUT:-10}"
[[ "$HEALTH_PORT_BASE" =~ ^[0-9]+$ ]] || die "CONCORD_HEALTH_PORT_BASE must be a port number, not '$HEALTH_PORT_BASE'"
export CONCORD_KAFKA_BOOTSTRAP="${CONCORD_KAFKA_BOOTSTRAP:-$(kafka_bootstrap_all)}"

MAX_REPLICAS=9

service_index() {
    local i
    for i in "${!SERVICES[@]}"; do
        if [[ "${SERVICES[$i]}" == "$1" ]]; then
            echo "$i"
            return 0
        fi
    done
    return 1
}

# An instance name: `intake` (replica 1) or `intake-2`.
service_of() { echo "${1%-[0-9]}"; }
replica_of() { if [[ "$1" =~ -([0-9])$ ]]; then echo "${BASH_REMATCH[1]}"; else echo 1; fi; }
instance_name() { if (($2 == 1)); then echo "$1"; else echo "$1-$2"; fi; }

health_port() {
    local idx
    idx="$(service_index "$(service_of "$1")")" || return 1
    echo $((HEALTH_PORT_BASE + 10 * ($(replica_of "$1") - 1) + idx))
}

match_of() { echo "services.$(service_of "$1")"; }

# The instances a name stands for: the wanted replicas (start), or also running extras (stop/status).
instances_of() {
    local name="$1" with_extras="$2" r
    if [[ "$name" =~ -[0-9]$ ]]; then
        echo "$name"
        return
    fi
    for ((r = 1; r <= MAX_REPLICAS; r++)); do
        if ((r <= SERVICE_REPLICAS)) || { ((with_extras)) && [[ -e "$RUN_DIR/$(instance_name "$name" "$r").pid" ]]; }; then
            instance_name "$name" "$r"
        fi
    done
}

# GET /health/ready answers 200. Plain bash: curl may be missing.
http_ready() {
    (
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf 'GET /health/ready HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
        IFS= read -r -t 3 status <&3 || exit 1
        # Drain to EOF: closing early resets the connection and servers log that.
        while IFS= read -r -t 3 _ <&3; do :; done
        [[ "$status" =~ ^HTTP/[0-9.]+\ 200 ]]
    ) 2>/dev/null
}

launch() {
    local name="$1" port log="$LOG_DIR/$1.log" pid svc
    port="$(health_port "$name")"
    [[ -s "$log" ]] && mv -f "$log" "$log.1"
    (
        cd "$REPO_ROOT"
        # setsid: own session and process group, so stop can signal the group.
        svc="$(service_of "$name")"
        exec setsid env \
            CONCORD_SERVICE="$svc" \
            CONCORD_DB_DSN="postgresql://$svc:local-dev-$svc@127.0.0.1:$PG_PORT/$svc" \
            CONCORD_DB_OWNER_DSN="postgresql://${svc}_owner:local-dev-${svc}_owner@127.0.0.1:$PG_PORT/$svc" \
            CONCORD_HEALTH_PORT="$port" \
            CONCORD_OTEL_EXPORTER="${CONCORD_OTEL_EXPORTER:-zipkin}" \
            CONCORD_BANK_SANDBOX="${CONCORD_BANK_SANDBOX:-1}" \
            CONCORD_ZIPKIN_PORT="$ZIPKIN_PORT" \
            OTEL_BSP_SCHEDULE_DELAY="${OTEL_BSP_SCHEDULE_DELAY:-1000}" \
            PYTHONUNBUFFERED=1 \
            "$VENV_DIR/bin/python" -m "services.$svc" >>"$log" 2>&1 </dev/null
    ) &
    pid=$!
    echo "$pid" >"$RUN_DIR/$name.pid"
    say "starting $name (pid $pid, health :$port, log $log)"
}

start() {
    local name pid pending=() still=() i port
    [[ -x "$VENV_DIR/bin/python" ]] || die "$VENV_DIR missing: run deploy/install.sh first"
    # bank_gateway's folders (SPEC §12.4), where a transfer agent would pick up and drop files.
    (cd "$REPO_ROOT" && mkdir -p "${CONCORD_BANK_OUTBOX:-.cache/bank/outbox}" \
        "${CONCORD_BANK_INBOX:-.cache/bank/inbox}/processed" "${CONCORD_BANK_INBOX:-.cache/bank/inbox}/rejected")
    for name in "$@"; do
        if pid="$(pid_of "$name" "$(match_of "$name")")"; then
            say "$name already running (pid $pid)"
            continue
        fi
        port="$(health_port "$name")"
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            die "port $port (health of $name) is already in use by another process"
        fi
        launch "$name"
        pending+=("$name")
    done
    ((${#pending[@]})) || return 0
    for ((i = 0; i < START_TIMEOUT * 4; i++)); do
        still=()
        for name in "${pending[@]}"; do
            pid="$(<"$RUN_DIR/$name.pid")"
            if ! kill -0 "$pid" 2>/dev/null; then
                rm -f "$RUN_DIR/$name.pid"
                log_tail "$LOG_DIR/$name.log"
                die "$name exited during start-up, see $LOG_DIR/$name.log"
            fi
            if http_ready "$(health_port "$name")"; then
                say "$name ready"
            else
                still+=("$name")
            fi
        done
        ((${#still[@]})) || return 0
        pending=("${still[@]}")
        sleep 0.25
    done
    for name in "${pending[@]}"; do log_tail "$LOG_DIR/$name.log"; done
    die "not ready after ${START_TIMEOUT}s: ${pending[*]} (GET http://127.0.0.1:<port>/health/ready; still running, stop with: $0 stop ${pending[*]})"
}

stop() {
    local name
    for name in "$@"; do
        stop_pid "$name" "$(match_of "$name")" "$STOP_TIMEOUT" &
    done
    wait
}

status() {
    local name pid port rc=0
    for name in "$@"; do
        port="$(health_port "$name")"
        if pid="$(pid_of "$name" "$(match_of "$name")")"; then
            if http_ready "$port"; then
                say "$name running (pid $pid), ready on :$port"
            else
                say "$name running (pid $pid), NOT ready on :$port"
                rc=1
            fi
        else
            say "$name stopped"
            rc=3
        fi
    done
    return "$rc"
}

cmd="${1:-}"
shift || true
names=("$@")
((${#names[@]})) || names=("${SERVICES[@]}")
instances=()
for n in "${names[@]}"; do
    service_index "$(service_of "$n")" >/dev/null || die "unknown service '$n' (known: ${SERVICES[*]})"
    extras=1
    [[ "$cmd" == start ]] && extras=0
    while IFS= read -r inst; do instances+=("$inst"); done < <(instances_of "$n" "$extras")
done

case "$cmd" in
start) start "${instances[@]}" ;;
stop) stop "${instances[@]}" ;;
status) status "${instances[@]}" ;;
*)
    echo "usage: $0 start|stop|status [${SERVICES[*]}] (or one replica: payout_release-2)" >&2
    exit 2
    ;;
esac
