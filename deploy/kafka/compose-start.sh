#!/bin/sh
# docker-compose's Kafka (apache/kafka image): the same server.properties template as
# deploy/kafka.sh, with SASL_SSL on the in-network listener (kafka:9092) and on the one
# published to the host (127.0.0.1:9092), the controller on SASL/PLAIN, admin's SCRAM
# credential added at format time. Not run on the no-Docker machines this project is built on.
set -eu
ADMIN_PASSWORD="${CONCORD_KAFKA_ADMIN_PASSWORD:-local-dev-admin}"
CERTS=/certs
PROPS=/tmp/concord-server.properties
umask 077
sed -e "s|@KAFKA_PORT@|9092|g" -e "s|@CONTROLLER_PORT@|9093|g" \
    -e "s|@DATA_DIR@|/var/lib/kafka/data|g" -e "s|@CLIENT_PROTOCOL@|SASL_SSL|g" \
    -e "s|@ADMIN_PASSWORD@|$ADMIN_PASSWORD|g" /concord/kafka/server.properties >"$PROPS"
# Later keys win: the container's listeners, and TLS on both client listeners.
cat >>"$PROPS" <<PROPS
controller.quorum.voters=1@kafka:9093
listeners=CLIENT://:9092,HOST://:19092,CONTROLLER://:9093
advertised.listeners=CLIENT://kafka:9092,HOST://127.0.0.1:9092
listener.security.protocol.map=CLIENT:SASL_SSL,HOST:SASL_SSL,CONTROLLER:SASL_PLAINTEXT
listener.name.host.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.host.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$ADMIN_PASSWORD";
ssl.keystore.type=PEM
ssl.keystore.location=$CERTS/broker-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$CERTS/ca.pem
PROPS
cat >/tmp/concord-admin-client.properties <<PROPS
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$ADMIN_PASSWORD";
ssl.truststore.type=PEM
ssl.truststore.location=$CERTS/ca.pem
PROPS
/opt/kafka/bin/kafka-storage.sh format --ignore-formatted -t "$CLUSTER_ID" -c "$PROPS" \
    --add-scram "SCRAM-SHA-512=[name=admin,password=$ADMIN_PASSWORD]"
exec /opt/kafka/bin/kafka-server-start.sh "$PROPS"
