#!/usr/bin/env bash
# Refuse to go on with a missing or known development secret: run before bringing up the
# production profile (deploy/compose.production.yaml; deploy/README.md, "Production").
#
#   bash deploy/check-secrets.sh deploy/.env && docker compose ... up -d
#   bash deploy/check-secrets.sh deploy/.env --cluster     (with compose.cluster.yaml: the
#                                                            Erlang cookie is required too)
#
# Reads the env file (KEY=value lines; the process environment wins, as in Compose) and
# names every secret that is missing, empty or a development one (guest, dev-*, the sample
# passwords), every certificate file that is missing, and definitions that are the sample
# ones. Exit 0 only when there is none. The services refuse the same on their own
# (LINKWELL_MODE=production, services/runtime/secure.py), and Compose refuses to
# interpolate a missing one: this says all of it at once, before anything starts.
set -uo pipefail
cd "$(dirname "$0")/.."
ENV_FILE="${1:-deploy/.env}"
declare -A VALUE=()
if [ -f "$ENV_FILE" ]; then
    while IFS= read -r line || [ -n "$line" ]; do
        [[ $line =~ ^[[:space:]]*([A-Z_][A-Z0-9_]*)=(.*)$ ]] || continue
        value="${BASH_REMATCH[2]}"
        value="${value%\"}"; value="${value#\"}"; value="${value%\'}"; value="${value#\'}"
        VALUE[${BASH_REMATCH[1]}]="$value"
    done <"$ENV_FILE"
else
    echo "check-secrets: no $ENV_FILE (using the environment only)" >&2
fi
get() { local name=$1; if [ -n "${!name+x}" ]; then printf '%s' "${!name}"; else printf '%s' "${VALUE[$name]:-}"; fi; }

SECRETS=(POSTGRES_PASSWORD LINKWELL_ADMIN_AMQP_PASSWORD)
for s in INTAKE TRIAGE NOTIFY OUTCOMES AUDIT GATEWAY; do
    SECRETS+=("LINKWELL_${s}_AMQP_PASSWORD" "LINKWELL_${s}_DB_PASSWORD")
done
SECRETS+=(LINKWELL_READSIDE_DB_PASSWORD LINKWELL_READSIDE_AMQP_PASSWORD LINKWELL_GATEWAY_CLIENT_PEPPER)
bad=0
refuse() { echo "check-secrets: $*" >&2; bad=1; }
development() {
    local v="${1,,}"
    [[ -z $v || $v == guest || $v == postgres || $v == password || $v == changeme \
        || $v == secret || $v == dev-* ]]
}
for name in "${SECRETS[@]}"; do
    value="$(get "$name")"
    if [ -z "$value" ]; then
        refuse "$name is not set"
    elif development "$value"; then
        refuse "$name is a known development secret: give it its own (openssl rand -hex 24)"
    elif [ "${#value}" -lt 16 ]; then
        refuse "$name is shorter than 16 characters"
    fi
done
cookie="$(get LINKWELL_ERLANG_COOKIE)"
if [ "${2:-}" = --cluster ] && [ -z "$cookie" ]; then
    refuse "LINKWELL_ERLANG_COOKIE is not set (openssl rand -hex 32)"
elif [ -n "$cookie" ] && development "$cookie"; then
    refuse "LINKWELL_ERLANG_COOKIE is a known development secret"
fi
tls="$(get LINKWELL_TLS_DIR)"
if [ -z "$tls" ]; then
    refuse "LINKWELL_TLS_DIR is not set (ca.pem, rabbitmq.pem/.key, postgres.pem/.key)"
else
    for f in ca.pem rabbitmq.pem rabbitmq.key postgres.pem postgres.key; do
        [ -f "$tls/$f" ] || refuse "LINKWELL_TLS_DIR: $tls/$f is missing"
    done
    if [ -f "$tls/ca.pem" ] && grep -q "Linkwell development CA" <(openssl x509 -in "$tls/ca.pem" -noout -subject 2>/dev/null); then
        refuse "LINKWELL_TLS_DIR: $tls/ca.pem is the development CA (deploy/tls/make-dev-ca.sh); use your own"
    fi
fi
definitions="$(get LINKWELL_DEFINITIONS)"
if [ -z "$definitions" ]; then
    refuse "LINKWELL_DEFINITIONS is not set (linkwell access definitions --out ..., with your passwords)"
elif [ ! -f "$definitions" ]; then
    refuse "LINKWELL_DEFINITIONS: $definitions is missing"
elif cmp -s "$definitions" deploy/rabbitmq/definitions.json; then
    refuse "LINKWELL_DEFINITIONS is the sample deploy/rabbitmq/definitions.json"
fi
[ "$(get LINKWELL_MODE)" = development ] && refuse "LINKWELL_MODE=development is for a developer's machine"
[ $bad = 0 ] && echo "check-secrets: $ENV_FILE: every secret set, none a development one"
exit $bad
