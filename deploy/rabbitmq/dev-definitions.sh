#!/bin/sh
# The development broker's users, made at its start: the committed sample
# deploy/rabbitmq/definitions.json holds no password hash (no user in it can sign in), so
# this entrypoint of the development compose stack (deploy/compose.yaml) fills in the hash
# of each user's development password, dev-<user>, and starts RabbitMQ with the result.
# Those passwords exist only on a developer's machine; every service refuses them outside
# development (services/runtime/secure.py), and so does deploy/check-secrets.sh.
# A definitions file already mounted at /etc/rabbitmq/definitions.json (the production
# profile's LINKWELL_DEFINITIONS, made with the operator's passwords) is used as it is.
#
#   sh dev-definitions.sh hash PASSWORD     RabbitMQ's rabbit_password_hashing_sha256
#   sh dev-definitions.sh fill SAMPLE OUT   the sample with each user's dev hash
#   sh dev-definitions.sh [COMMAND...]      fill if need be, then run the image's entrypoint
set -eu

SAMPLE=${LINKWELL_SAMPLE_DEFINITIONS:-/etc/linkwell/definitions.sample.json}
TARGET=/etc/rabbitmq/definitions.json

hash() { # base64(salt + sha256(salt + password)), a 4-byte random salt
    if command -v openssl >/dev/null 2>&1; then
        dir=$(mktemp -d)
        head -c 4 /dev/urandom >"$dir/salt"
        { cat "$dir/salt"; printf '%s' "$1"; } | openssl dgst -sha256 -binary >"$dir/digest"
        cat "$dir/salt" "$dir/digest" | base64 | tr -d '\n'
        rm -r "$dir"
    else # the broker's own Erlang (Debian's rabbitmq-server has no openssl command)
        LINKWELL_PW="$1" erl -noshell -eval '
            P = list_to_binary(os:getenv("LINKWELL_PW")), S = crypto:strong_rand_bytes(4),
            io:format("~s", [base64:encode(<<S/binary, (crypto:hash(sha256, <<S/binary, P/binary>>))/binary>>)]),
            halt().'
    fi
}

fill() { # each "password_hash": "" gets the hash of dev-<the user named just above>
    awk -v self="$0" '
        /"name": "/ { name = $0; sub(/.*"name": "/, "", name); sub(/".*/, "", name) }
        /"password_hash": ""/ {
            cmd = "sh \"" self "\" hash \"dev-" name "\""
            cmd | getline h; close(cmd)
            sub(/"password_hash": ""/, "\"password_hash\": \"" h "\"")
        }
        { print }
    ' "$1" >"$2"
}

case "${1:-}" in
hash) hash "$2"; exit 0 ;;
fill) fill "$2" "$3"; exit 0 ;;
esac

if [ ! -e "$TARGET" ]; then
    fill "$SAMPLE" "$TARGET.tmp"
    chmod 0644 "$TARGET.tmp"
    mv "$TARGET.tmp" "$TARGET"
    echo "dev-definitions: development passwords dev-<user> for the sample's users" >&2
fi
[ "$#" -gt 0 ] || set -- rabbitmq-server
if command -v docker-entrypoint.sh >/dev/null 2>&1; then
    exec docker-entrypoint.sh "$@" # the official image
fi
exec "$@" # deploy/images/rabbitmq: no entrypoint of its own
