#!/usr/bin/env bash
# Linkwell on this machine, as plain processes (no containers needed).
#
#   bash deploy/local.sh demo    install, start RabbitMQ/PostgreSQL if down, run the four
#                                services and the demo, then stop the services
#   bash deploy/local.sh test    install, start RabbitMQ/PostgreSQL if down, run the tests
#   bash deploy/local.sh run     install, then run the pipeline in the foreground
#   bash deploy/local.sh bench   install, then run the benchmark (bench/pipeline.py)
#
# AMQP_URL and DATABASE_URL default to this machine's servers; LINKWELL_NAMESPACE
# (default "linkwell") prefixes every exchange, queue and schema.
set -euo pipefail
cd "$(dirname "$0")/.."

export AMQP_URL="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/}"
export DATABASE_URL="${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"
PY=.venv/bin/python

say() { printf '\033[1m== %s\033[0m\n' "$*"; }

install() {
  say "installing into .venv (pinned by requirements.lock)"
  [ -x "$PY" ] || python3 -m venv .venv
  "$PY" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$PY" -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[test]'
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
        say "starting RabbitMQ"
        command -v rabbitmq-server >/dev/null || { echo "RabbitMQ is not installed" >&2; exit 1; }
        rabbitmq-server -detached
        wait_port 5672 RabbitMQ
        rabbitmqctl await_startup >/dev/null 2>&1 || true
      fi
      # the management API: `linkwell access apply` and the access tests use it
      if ! port_open 15672; then
        say "enabling RabbitMQ's management plugin"
        rabbitmq-plugins enable --quiet rabbitmq_management >/dev/null
        wait_port 15672 "RabbitMQ management"
      fi ;;
  esac
  case "$DATABASE_URL" in
    *@127.0.0.1:*|*@localhost:*|*@127.0.0.1/*|*@localhost/*)
      if ! port_open 5432; then
        say "starting PostgreSQL"
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
        wait_port 5432 PostgreSQL
      fi ;;
  esac
}

prepare() {
  "$PY" -m services.ops.cli migrate
  "$PY" -m services.ops.cli topology
}

cmd="${1:-demo}"
shift || true
case "$cmd" in
  demo)
    install; ensure_services; prepare
    say "starting intake, triage, notify and outcomes"
    "$PY" -m services.ops.cli run all > var-linkwell.log 2>&1 &
    pipeline=$!
    trap 'kill -TERM $pipeline 2>/dev/null; wait $pipeline 2>/dev/null || true' EXIT
    say "running the demo (service logs: var-linkwell.log)"
    "$PY" -m services.ops.cli demo "$@"
    ;;
  run)
    install; ensure_services; prepare
    exec "$PY" -m services.ops.cli run all
    ;;
  test)
    install; ensure_services
    say "running the tests"
    exec "$PY" -m pytest "$@"
    ;;
  bench)
    install; ensure_services
    exec "$PY" bench/pipeline.py "$@"
    ;;
  *)
    echo "usage: bash deploy/local.sh demo|run|test|bench" >&2
    exit 2
    ;;
esac
