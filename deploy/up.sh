#!/usr/bin/env bash
# The whole local stack, without Docker: PostgreSQL, Kafka, topics, the five
# services. Starts only what is not running yet.
#   deploy/up.sh [--no-services] [--no-install]
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
"$DEPLOY_DIR/postgres.sh" start
"$DEPLOY_DIR/kafka.sh" start

export CONCORD_KAFKA_BOOTSTRAP="${CONCORD_KAFKA_BOOTSTRAP:-$(kafka_bootstrap_all)}"
say "ensuring topics, SCRAM credentials and ACLs on $CONCORD_KAFKA_BOOTSTRAP (as admin)"
(cd "$REPO_ROOT" && "$VENV_DIR/bin/python" -m shared.admin ensure-topics) || die "shared.admin ensure-topics failed"
(cd "$REPO_ROOT" && "$VENV_DIR/bin/python" -m shared.admin ensure-security) || die "shared.admin ensure-security failed"

((with_services)) && "$DEPLOY_DIR/services.sh" start
say "up in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')s"
