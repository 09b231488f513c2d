#!/usr/bin/env bash
# A DEVELOPMENT certificate authority and server certificates for the broker and the
# database, made with openssl. Production brings its own CA and certificates (issued by
# the organisation's PKI): never deploy these.
#
#   bash deploy/tls/make-dev-ca.sh [DIR]      (default: deploy/tls/dev, ignored by git)
#
# DIR/ca.pem                      the CA the services verify against (LINKWELL_TLS_CA)
# DIR/rabbitmq.pem, rabbitmq.key  RabbitMQ's certificate: rabbitmq, rabbitmq-1..3,
#                                 localhost, 127.0.0.1
# DIR/postgres.pem, postgres.key  PostgreSQL's certificate: postgres, localhost, 127.0.0.1
# Extra names for both: LINKWELL_TLS_NAMES="broker.example.org db.example.org".
# Existing files are kept (delete DIR to make new ones). Keys are mode 0600, readable by
# the servers' users in the compose stack (uid 999, as the images run them).
set -euo pipefail
DIR="${1:-$(dirname "$0")/dev}"
DAYS="${LINKWELL_TLS_DAYS:-365}"
mkdir -p "$DIR"
cd "$DIR"

if [ ! -f ca.pem ]; then
    openssl req -x509 -newkey rsa:3072 -nodes -days "$DAYS" -sha256 \
        -subj "/CN=Linkwell development CA" -keyout ca.key -out ca.pem \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    chmod 600 ca.key
    echo "made $DIR/ca.pem"
fi

server() {
    local name=$1; shift
    [ -f "$name.pem" ] && return 0
    local san="" host
    for host in "$@" ${LINKWELL_TLS_NAMES:-}; do
        if [[ $host =~ ^[0-9.]+$ ]]; then san+="IP:$host,"; else san+="DNS:$host,"; fi
    done
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$1" \
        -keyout "$name.key" -out "$name.csr" 2>/dev/null
    openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
        -days "$DAYS" -sha256 -out "$name.pem" -extfile <(printf '%s\n' \
            "subjectAltName=${san%,}" "extendedKeyUsage=serverAuth" \
            "keyUsage=critical,digitalSignature,keyEncipherment" \
            "basicConstraints=CA:FALSE") 2>/dev/null
    rm -f "$name.csr"
    chmod 600 "$name.key"
    echo "made $DIR/$name.pem (${san%,})"
}

server rabbitmq rabbitmq rabbitmq-1 rabbitmq-2 rabbitmq-3 localhost 127.0.0.1
server postgres postgres localhost 127.0.0.1
