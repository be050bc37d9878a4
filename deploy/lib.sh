# shellcheck shell=bash disable=SC2034
# Shared helpers for the deploy/*.sh scripts. Source it; do not run it.
# Everything resolves from this file's location, so any clone path works.

DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$DEPLOY_DIR/.." && pwd)"
STATE_DIR="${CONCORD_STATE_DIR:-$REPO_ROOT/.cache}"
# Overridable so that a test can run a second Zipkin beside the stack's (tests/observability_support.py).
LOG_DIR="${CONCORD_LOG_DIR:-$STATE_DIR/logs}"
RUN_DIR="${CONCORD_RUN_DIR:-$STATE_DIR/run}"
VENV_DIR="$REPO_ROOT/.venv"

KAFKA_PORT="${CONCORD_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${CONCORD_KAFKA_CONTROLLER_PORT:-9093}"
PG_PORT="${CONCORD_PG_PORT:-54329}"
PROMETHEUS_PORT="${CONCORD_PROMETHEUS_PORT:-9090}"
ZIPKIN_PORT="${CONCORD_ZIPKIN_PORT:-9411}"
HEALTH_PORT_BASE="${CONCORD_HEALTH_PORT_BASE:-8081}"

# CONCORD_KAFKA_BROKERS=3: a three-node KRaft cluster (combined broker+controller nodes). Node i
# listens on CONCORD_KAFKA_PORT + 2(i-1) for clients and CONCORD_KAFKA_CONTROLLER_PORT + 2(i-1) for
# the quorum (9092/9093, 9094/9095, 9096/9097 by default).
# Unset, it follows what runs: a cluster started by `make chaos-cluster` stays in use by `make test`.
KAFKA_BROKERS="${CONCORD_KAFKA_BROKERS:-1}"
if [[ -z "${CONCORD_KAFKA_BROKERS:-}" && -s "$RUN_DIR/kafka-1.pid" ]] &&
    kill -0 "$(<"$RUN_DIR/kafka-1.pid")" 2>/dev/null; then
    KAFKA_BROKERS=3
fi
[[ "$KAFKA_BROKERS" =~ ^[13]$ ]] || {
    printf '%s: ERROR: CONCORD_KAFKA_BROKERS must be 1 or 3, not %s\n' "${COMPONENT:-deploy}" "$KAFKA_BROKERS" >&2
    exit 1
}
kafka_client_port() { echo $((KAFKA_PORT + 2 * ($1 - 1))); }
kafka_controller_port() { echo $((KAFKA_CONTROLLER_PORT + 2 * ($1 - 1))); }
# Every node's client address, comma-separated: the clients' default bootstrap list.
kafka_bootstrap_all() {
    local i out=""
    for ((i = 1; i <= KAFKA_BROKERS; i++)); do out+="${out:+,}127.0.0.1:$(kafka_client_port "$i")"; done
    echo "$out"
}

# CONCORD_SERVICE_REPLICAS=N: N processes of every service (consumer groups share the partitions).
SERVICE_REPLICAS="${CONCORD_SERVICE_REPLICAS:-1}"
[[ "$SERVICE_REPLICAS" =~ ^[1-9]$ ]] || {
    printf '%s: ERROR: CONCORD_SERVICE_REPLICAS must be 1..9, not %s\n' "${COMPONENT:-deploy}" "$SERVICE_REPLICAS" >&2
    exit 1
}

# SPEC §11: with CONCORD_KAFKA_TLS=1 the broker's client listener is SASL_SSL and every client
# verifies it against the CA that deploy/kafka.sh made.
if [[ "${CONCORD_KAFKA_TLS:-0}" == 1 ]]; then
    export CONCORD_KAFKA_SECURITY_PROTOCOL="${CONCORD_KAFKA_SECURITY_PROTOCOL:-SASL_SSL}"
    export CONCORD_KAFKA_CA_FILE="${CONCORD_KAFKA_CA_FILE:-$STATE_DIR/kafka-tls/ca.pem}"
fi

# Order matters: health ports are 8081.. in this order.
SERVICES=(intake matching compliance_gate payout_release ledger bank_gateway)

export DEBIAN_FRONTEND=noninteractive

mkdir -p "$LOG_DIR" "$RUN_DIR"

say() { printf '%s: %s\n' "${COMPONENT:-deploy}" "$*"; }
warn() { printf '%s: WARNING: %s\n' "${COMPONENT:-deploy}" "$*" >&2; }
die() {
    printf '%s: ERROR: %s\n' "${COMPONENT:-deploy}" "$*" >&2
    exit 1
}

# Python to use for helper checks: the project venv if present, else the system's.
helper_python() {
    if [[ -x "$VENV_DIR/bin/python" ]]; then
        echo "$VENV_DIR/bin/python"
    else
        command -v python3 || true
    fi
}

# pid_of NAME: print the pid recorded for NAME if that process is alive and its
# command line still contains MATCH (guards against pid reuse); else fail.
pid_of() {
    local name="$1" match="$2" pidfile="$RUN_DIR/$1.pid" pid
    [[ -s "$pidfile" ]] || return 1
    pid="$(<"$pidfile")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    if [[ -r "/proc/$pid/cmdline" ]] && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$match"; then
        return 1
    fi
    echo "$pid"
}

# stop_pid NAME MATCH GRACE_SECONDS: SIGTERM, wait, then SIGKILL. Signals the
# process group when the process leads its own (we start them with setsid).
stop_pid() {
    local name="$1" match="$2" grace="$3" pid target i
    if ! pid="$(pid_of "$name" "$match")"; then
        rm -f "$RUN_DIR/$name.pid"
        say "$name not running"
        return 0
    fi
    target="$pid"
    # /proc/PID/stat after "(comm) ": state ppid pgrp ...
    if [[ "$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f3)" == "$pid" ]]; then
        target="-$pid"
    fi
    kill -TERM -- "$target" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        warn "$name (pid $pid) still running after ${grace}s, sending SIGKILL"
        kill -KILL -- "$target" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    rm -f "$RUN_DIR/$name.pid"
    say "stopped $name (pid $pid)"
}

# log_tail FILE [N]: the last lines of a log, indented, for error messages.
log_tail() {
    local file="$1" n="${2:-30}"
    if [[ -f "$file" ]]; then
        echo "--- last $n lines of $file ---" >&2
        tail -n "$n" "$file" | sed 's/^/    /' >&2
    fi
}

# http_ok PORT PATH: GET http://127.0.0.1:PORT/PATH answers 2xx. Plain bash: curl may be missing.
http_ok() {
    (
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$2" >&3
        IFS= read -r -t 3 status <&3 || exit 1
        # Drain to EOF: closing early resets the connection and servers log that.
        while IFS= read -r -t 3 _ <&3; do :; done
        [[ "$status" =~ ^HTTP/[0-9.]+\ 2[0-9][0-9] ]]
    ) 2>/dev/null
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

apt_updated=0
apt_install() {
    if [[ "$apt_updated" == 0 ]]; then
        say "apt-get update"
        apt-get update -qq
        apt_updated=1
    fi
    say "apt-get install -y $*"
    apt-get install -y -qq --no-install-recommends "$@"
}
