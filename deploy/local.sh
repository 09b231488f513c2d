#!/usr/bin/env bash
# Linkwell on this machine, as plain processes (no containers needed).
#
#   bash deploy/local.sh demo    the five services and the demo, then stops the services
#                                (the people's door is up only while the demo runs)
#   bash deploy/local.sh test    the test suite
#   bash deploy/local.sh run     the five services in the foreground (Ctrl-C stops them);
#                                the people's door: http://127.0.0.1:8070/refer
#   bash deploy/local.sh users   the sample organisations' broker users, passwords dev-<user>
#   bash deploy/local.sh bench   the benchmark (bench/pipeline.py)
#   bash deploy/local.sh bench gateway   the people's door's form post (bench/gateway.py)
#
# What every command does first, and nothing more:
#   - creates .venv and installs the pinned Python packages into it (requirements.lock, every file
#     checked against its SHA-256);
#   - if AMQP_URL / DATABASE_URL point at this machine (the default) and RabbitMQ or
#     PostgreSQL is not answering, starts the installed server, and enables RabbitMQ's
#     management plugin (port 15672: `linkwell access` and the tests use its API);
#     it says so, and how to stop them.
# It installs no system packages and starts no Docker engine: the compose stack test runs
# only where Docker already answers (bash deploy/docker/host.sh sets Docker up; .ci/run
# does that first).
#
# AMQP_URL and DATABASE_URL default to this machine's servers; LINKWELL_NAMESPACE
# (default "linkwell") prefixes every exchange, queue and schema.
set -euo pipefail
cd "$(dirname "$0")/.."

export AMQP_URL="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/}"
export DATABASE_URL="${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"
# A developer's machine: plain links on 127.0.0.1, sample passwords, guest trusted.
# Production refuses all three (LINKWELL_MODE unset; services/runtime/secure.py).
export LINKWELL_MODE="${LINKWELL_MODE:-development}"
PY=.venv/bin/python
STARTED=()

say() { printf '\033[1m== %s\033[0m\n' "$*"; }

install() {
  say "installing Python packages into .venv (pinned by requirements.lock)"
  [ -x "$PY" ] || python3 -m venv .venv
  "$PY" -m pip install --quiet --disable-pip-version-check --upgrade pip
  # every file checked against its SHA-256 in the lock (bash deploy/lock.sh makes it);
  # then Linkwell itself, whose dependencies that was
  "$PY" -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
  "$PY" -m pip install --quiet --disable-pip-version-check --no-deps -e .
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 name=$2
  for _ in $(seq 1 90); do port_open "$port" && return 0; sleep 1; done
  echo "$name did not come up on port $port" >&2
  exit 1
}

ensure_services() {
  case "$AMQP_URL" in
    *@127.0.0.1:*|*@localhost:*|*@127.0.0.1/*|*@localhost/*)
      if ! port_open 5672; then
        say "starting RabbitMQ (rabbitmq-server -detached)"
        command -v rabbitmq-server >/dev/null || { echo "RabbitMQ is not installed" >&2; exit 1; }
        rabbitmq-server -detached
        wait_port 5672 RabbitMQ
        rabbitmqctl await_startup >/dev/null 2>&1 || true
        STARTED+=("RabbitMQ: rabbitmqctl stop")
      fi
      if ! port_open 15672; then
        say "enabling RabbitMQ's management plugin (HTTP API on 127.0.0.1:15672)"
        rabbitmq-plugins enable --quiet rabbitmq_management >/dev/null
        wait_port 15672 "RabbitMQ management"
        STARTED+=("the management plugin: rabbitmq-plugins disable rabbitmq_management")
      fi ;;
  esac
  case "$DATABASE_URL" in
    *@127.0.0.1:*|*@localhost:*|*@127.0.0.1/*|*@localhost/*)
      if ! port_open 5432; then
        say "starting PostgreSQL"
        local version
        version="$(ls /etc/postgresql | head -n1)"
        pg_ctlcluster --skip-systemctl-redirect "$version" main start
        wait_port 5432 PostgreSQL
        STARTED+=("PostgreSQL: pg_ctlcluster --skip-systemctl-redirect $version main stop")
      fi ;;
  esac
}

report_started() {
  [ ${#STARTED[@]} -eq 0 ] && return 0
  say "this run started (still running, for the next one); to stop:"
  printf '   %s\n' "${STARTED[@]}"
}
trap report_started EXIT

prepare() {
  "$PY" -m services.ops.cli migrate
  "$PY" -m services.ops.cli topology
}

cmd="${1:-demo}"
shift || true
case "$cmd" in
  demo)
    install; ensure_services; prepare
    say "starting intake, triage, notify, outcomes, gateway and audit (their logs: var-linkwell.log)"
    "$PY" -m services.ops.cli run all > var-linkwell.log 2>&1 &
    pipeline=$!
    trap 'kill -TERM $pipeline 2>/dev/null; wait $pipeline 2>/dev/null || true; report_started' EXIT
    say "running the demo (meanwhile the people's door is http://127.0.0.1:${LINKWELL_GATEWAY_PORT:-8070}/refer)"
    "$PY" -m services.ops.cli demo "$@"
    say "the demo stops its services now; to try the people's door, run them: bash deploy/local.sh run"
    say "  then refer yourself: http://127.0.0.1:${LINKWELL_GATEWAY_PORT:-8070}/refer, check a referral: http://127.0.0.1:${LINKWELL_GATEWAY_PORT:-8070}/status"
    ;;
  run)
    install; ensure_services; prepare
    say "the people's door: http://127.0.0.1:${LINKWELL_GATEWAY_PORT:-8070}/refer, its status page: /status (Ctrl-C stops everything)"
    "$PY" -m services.ops.cli run all
    ;;
  synthetic)
    install; ensure_services; prepare
    say "filling the synthetic model (schema linkwell_synthetic) with a year of SYNTHETIC referrals"
    "$PY" -m services.ops.cli synthetic "$@"
    ;;
  users)
    install; ensure_services; prepare
    say "creating the sample organisations' broker users (deploy/rabbitmq/organisations.toml)"
    "$PY" -m services.ops.cli access apply --sample-passwords --reset-passwords
    echo "development passwords: dev-<user> (e.g. A81001 / dev-A81001); never use them elsewhere"
    ;;
  test)
    install; ensure_services
    say "running the tests"
    "$PY" -m pytest "$@"
    ;;
  bench)
    install; ensure_services
    if [ "${1:-}" = gateway ]; then
      shift
      "$PY" bench/gateway.py "$@"
    else
      "$PY" bench/pipeline.py "$@"
    fi
    ;;
  *)
    echo "usage: bash deploy/local.sh demo|test|run|users|bench [gateway]" >&2
    exit 2
    ;;
esac
