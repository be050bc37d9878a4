#!/bin/sh
# A CA and a broker certificate signed by it, for SASL_SSL (SPEC §11), made with openssl.
#   deploy/kafka/make-certs.sh DIR [SAN]   (SAN default: IP:127.0.0.1,DNS:localhost)
# Writes DIR/ca.pem (what clients trust: CONCORD_KAFKA_CA_FILE) and DIR/broker-keystore.pem
# (an unencrypted PKCS#8 key followed by the chain: Kafka's PEM key store). Does nothing when
# both exist. Used by deploy/kafka.sh (CONCORD_KAFKA_TLS=1) and by docker-compose.yml.
set -eu
dir="$1"
san="${2:-IP:127.0.0.1,DNS:localhost}"
[ -s "$dir/ca.pem" ] && [ -s "$dir/broker-keystore.pem" ] && exit 0
mkdir -p "$dir"
cd "$dir"
openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=Concord local CA" \
    -keyout ca-key.pem -out ca.pem
openssl req -newkey rsa:2048 -nodes -subj "/CN=concord-kafka" -keyout broker-key.pem -out broker.csr
printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$san" >broker.ext
openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 3650 \
    -extfile broker.ext -out broker.pem
openssl pkcs8 -topk8 -nocrypt -in broker-key.pem -out broker-key.pk8.pem
cat broker-key.pk8.pem broker.pem ca.pem >broker-keystore.pem
rm -f broker.csr broker.ext broker-key.pem
chmod 644 ca.pem broker.pem
chmod 640 broker-keystore.pem broker-key.pk8.pem ca-key.pem
