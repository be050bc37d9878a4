#!/usr/bin/env bash
# The whole local stack, without Docker: PostgreSQL, Kafka, topics, Zipkin, the five
# services, Prometheus and the console (http://127.0.0.1:8090/). Starts only what is not running yet.
#   deploy/up.sh [--no-services] [--no-install]
# --no-services (the tests, the benchmark, the chaos run: they start their own processes, and
# their own Zipkin and Prometheus where they need them): PostgreSQL, Kafka and topics only.
set -euo pipefail
COMPONENT=up
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

with_services=1
with_install=1
for arg in "$@"; do
    case "$arg" in
    --no-services) with_services=0 ;;
    --no-install) with_install=0 ;;
    *) die "unknown option $arg (use --no-services, --no-install)" ;;
    esac
done

t0=$EPOCHREALTIME
((with_install)) && "$DEPLOY_DIR/install.sh" -q
# Zipkin's JVM takes longest to start: it comes up beside PostgreSQL and Kafka, and is waited for
# before the services, so that their first spans have somewhere to go.
zipkin_pid=
if ((with_services)); then
    "$DEPLOY_DIR/zipkin.sh" start &
    zipkin_pid=$!
fi
"$DEPLOY_DIR/postgres.sh" start
"$DEPLOY_DIR/kafka.sh" start

export CONCORD_KAFKA_BOOTSTRAP="${CONCORD_KAFKA_BOOTSTRAP:-$(kafka_bootstrap_all)}"
say "ensuring topics, SCRAM credentials and ACLs on $CONCORD_KAFKA_BOOTSTRAP (as admin)"
(cd "$REPO_ROOT" && "$VENV_DIR/bin/python" -m shared.admin ensure-topics) || die "shared.admin ensure-topics failed"
(cd "$REPO_ROOT" && "$VENV_DIR/bin/python" -m shared.admin ensure-security) || die "shared.admin ensure-security failed"

if ((with_services)); then
    wait "$zipkin_pid" || die "zipkin did not start"
    "$DEPLOY_DIR/services.sh" start
    "$DEPLOY_DIR/prometheus.sh" start
    "$DEPLOY_DIR/console.sh" start
    say "traces: http://127.0.0.1:$ZIPKIN_PORT/zipkin/   metrics and alerts: http://127.0.0.1:$PROMETHEUS_PORT/alerts"
fi
say "up in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')s"
