#!/usr/bin/env bash
# Prometheus (Debian's package) scraping the local stack's services, with Concord's alert rules.
#   deploy/prometheus.sh start|stop|status
# Env: CONCORD_PROMETHEUS_PORT (9090), CONCORD_HEALTH_PORT_BASE (8081: where the services'
#      /metrics are, as deploy/services.sh starts them), CONCORD_PROMETHEUS_SCRAPE_INTERVAL (15s),
#      CONCORD_PROMETHEUS_RETENTION (7d), CONCORD_STATE_DIR (<repo>/.cache).
# Data in <state>/prometheus-data; the configuration is rendered into <state>/run/prometheus.yml at
# every start (a running Prometheus re-reads it on SIGHUP), rules from deploy/prometheus/alerts.yml.
set -euo pipefail
COMPONENT=prometheus
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DATA_DIR="$STATE_DIR/prometheus-data"
CONFIG="$RUN_DIR/prometheus.yml"
LOG="$LOG_DIR/prometheus.log"
SCRAPE_INTERVAL="${CONCORD_PROMETHEUS_SCRAPE_INTERVAL:-15s}"
RETENTION="${CONCORD_PROMETHEUS_RETENTION:-7d}"
TIMEOUT="${CONCORD_PROMETHEUS_START_TIMEOUT:-60}"
MATCH="$CONFIG"

render_config() {
    local py
    py="$(helper_python)"
    [[ -n "$py" ]] || die "no python to render $CONFIG: run deploy/install.sh first"
    (cd "$REPO_ROOT" && "$py" -m shared.observability prometheus-config --port-base "$HEALTH_PORT_BASE" \
        --scrape-interval "$SCRAPE_INTERVAL" "${SERVICES[@]}") >"$CONFIG.tmp" || die "rendering $CONFIG failed"
    promtool check config "$CONFIG.tmp" >>"$LOG" 2>&1 || {
        log_tail "$LOG"
        die "promtool rejects the rendered configuration $CONFIG.tmp"
    }
    mv -f "$CONFIG.tmp" "$CONFIG"
}

start() {
    local pid i
    command -v prometheus >/dev/null || die "prometheus not found: run deploy/install.sh first"
    mkdir -p "$DATA_DIR"
    if pid="$(pid_of prometheus "$MATCH")"; then
        render_config
        kill -HUP "$pid" # re-read targets and rules: the health ports may have moved
        say "already running (pid $pid) on http://127.0.0.1:$PROMETHEUS_PORT (configuration reloaded)"
        return 0
    fi
    port_open "$PROMETHEUS_PORT" && die "port $PROMETHEUS_PORT is already in use by another process"
    render_config
    say "starting on http://127.0.0.1:$PROMETHEUS_PORT, scraping health ports from $HEALTH_PORT_BASE (log: $LOG)"
    setsid prometheus --config.file="$CONFIG" --storage.tsdb.path="$DATA_DIR" \
        --storage.tsdb.retention.time="$RETENTION" --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" \
        --web.external-url="http://127.0.0.1:$PROMETHEUS_PORT/" >>"$LOG" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$RUN_DIR/prometheus.pid"
    for ((i = 0; i < TIMEOUT * 5; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$RUN_DIR/prometheus.pid"
            log_tail "$LOG"
            die "prometheus exited during start-up, see $LOG"
        fi
        if http_ok "$PROMETHEUS_PORT" /-/ready; then
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
    if pid="$(pid_of prometheus "$MATCH")"; then
        if http_ok "$PROMETHEUS_PORT" /-/ready; then
            say "running (pid $pid) on http://127.0.0.1:$PROMETHEUS_PORT (alerts: /alerts, targets: /targets)"
        else
            say "process running (pid $pid) but not ready on 127.0.0.1:$PROMETHEUS_PORT"
            return 1
        fi
    else
        say "stopped"
        return 3
    fi
}

case "${1:-}" in
start) start ;;
stop) stop_pid prometheus "$MATCH" 15 ;;
status) status ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
