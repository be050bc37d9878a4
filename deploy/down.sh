#!/usr/bin/env bash
# Stops the console, Prometheus, the services (every replica), Zipkin, Kafka (every node) and PostgreSQL.
# Data is kept unless --purge.
#   deploy/down.sh [--purge]
set -euo pipefail
COMPONENT=down
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

purge=0
case "${1:-}" in
"") ;;
--purge) purge=1 ;;
*) die "unknown option $1 (use --purge)" ;;
esac

"$DEPLOY_DIR/console.sh" stop
"$DEPLOY_DIR/prometheus.sh" stop
"$DEPLOY_DIR/services.sh" stop
"$DEPLOY_DIR/zipkin.sh" stop
"$DEPLOY_DIR/kafka.sh" stop
"$DEPLOY_DIR/postgres.sh" stop
if ((purge)); then
    rm -rf "$STATE_DIR/kafka-data" "$STATE_DIR/kafka-cluster" "$STATE_DIR/pgdata" "$STATE_DIR/pgsock" \
        "$STATE_DIR/prometheus-data"
    say "purged $STATE_DIR/kafka-data, kafka-cluster, pgdata and prometheus-data"
fi
