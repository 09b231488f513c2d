#!/usr/bin/env bash
# Build every image of the compose stack from the local Debian base (no image registry
# needed): linkwell/python:3.11-local, linkwell/rabbitmq:local, linkwell/postgres:local,
# then the Linkwell image on that Python. Run deploy/docker/host.sh first.
#
#   bash deploy/docker/build.sh [extra `docker compose build` arguments]
#
# pip in the image build must trust the same CAs as pip on this host (a proxy's or a
# company's CA): the first of LINKWELL_EXTRA_CA, PIP_CERT, pip's configured `cert`,
# REQUESTS_CA_BUNDLE, SSL_CERT_FILE that names a file is passed as the build secret
# extra_ca (added to the image's bundle during the build only; TLS is always verified).
# PIP_INDEX_URL / PIP_EXTRA_INDEX_URL are passed on when they are http(s) URLs.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "[docker-build] $*" >&2; }

pip_config_cert() {
    local pip
    for pip in ../.venv/bin/pip pip3 pip; do
        if command -v "$pip" >/dev/null 2>&1; then
            "$pip" config get global.cert 2>/dev/null && return 0
        fi
    done
    return 0
}

if [ -z "${LINKWELL_EXTRA_CA:-}" ]; then
    for candidate in "${PIP_CERT:-}" "$(pip_config_cert)" "${REQUESTS_CA_BUNDLE:-}" "${SSL_CERT_FILE:-}"; do
        if [ -n "$candidate" ] && [ -s "$candidate" ]; then
            export LINKWELL_EXTRA_CA="$candidate"
            break
        fi
    done
fi
[ -n "${LINKWELL_EXTRA_CA:-}" ] && log "pip will also trust the CAs in $LINKWELL_EXTRA_CA"

for var in PIP_INDEX_URL PIP_EXTRA_INDEX_URL; do
    case "${!var:-}" in
        http://* | https://*) export "$var" ;;
        *) unset "$var" ;;  # file:// indexes on this host are not visible in a build
    esac
done

compose=(docker compose --progress plain -f compose.yaml -f compose.test.yaml)
build_log=$(mktemp "${TMPDIR:-/tmp}/linkwell-build.XXXXXX")
trap 'rm -f "$build_log"' EXIT
build() {
    if ! "${compose[@]}" build "$@" >"$build_log" 2>&1; then
        tail -n 60 "$build_log" >&2
        log "FAILED: docker compose build $*"
        exit 1
    fi
}
images=(linkwell/python:3.11-local linkwell/rabbitmq:local linkwell/postgres:local "${LINKWELL_IMAGE:-linkwell:local}")
declare -A before
for image in "${images[@]}"; do
    before[$image]=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
done

start=$SECONDS
log "building the Python base"
build python-base
log "building RabbitMQ, PostgreSQL and Linkwell"
build "$@"

# the images these tags named before, if nothing else uses them now (no pile of <none>)
for image in "${images[@]}"; do
    old=${before[$image]}
    if [ -n "$old" ] && [ "$old" != "$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null)" ]; then
        docker image rm "$old" >/dev/null 2>&1 || true
    fi
done
log "built in $((SECONDS - start))s: $(docker image inspect -f '{{.Id}}' "${LINKWELL_IMAGE:-linkwell:local}" | cut -c8-19) ${LINKWELL_IMAGE:-linkwell:local}"
