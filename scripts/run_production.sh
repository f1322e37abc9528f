#!/usr/bin/env bash
# Production profile on one machine behind HAProxy (docs/production.md): PostgreSQL (customer DB +
# tracker store), Redis (lock store, socket.io rooms, shared limits), RabbitMQ (event broker);
# RASA_REPLICAS Rasa servers, ACTION_REPLICAS action servers, WEB_REPLICAS web apps (shop, token
# endpoint, agent console, dashboard) and CRM_INGESTORS CRM ingestors (competing consumers of the
# queue), with HAProxy on LB_BIND in front (deploy/haproxy/). Ctrl-C stops everything.
#
# Production settings are required, never generated: CONCIERGE_IDENTITY_SECRET, CONCIERGE_ACTION_TOKEN,
# CONCIERGE_SESSION_SECRET, RASA_API_TOKEN (each >= 32 characters: python3 -c 'import secrets;
# print(secrets.token_urlsafe(48))') and CONCIERGE_CORS_ORIGINS (the shop's origins, space separated,
# not "*"). No demo data (CONCIERGE_DEMO_SEED=1 seeds the demo shop into an empty database) and no demo
# console users (add people with `.venv/bin/python -m bot.web.users add NAME --role agent`).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD" TF_CPP_MIN_LOG_LEVEL=2 SQLALCHEMY_SILENCE_UBER_WARNING=1

# the secrets check, every default and export (shared with scripts/hosts.sh)
source scripts/production_env.sh
MODEL="${MODEL:-models/concierge.tar.gz}"
mkdir -p var/logs var/run

HAPROXY="$(deploy/haproxy/install.sh)"  # haproxy on PATH, else Debian's package unpacked under var/tools
.venv/bin/python -m bot.db.migrate
if [ "${CONCIERGE_DEMO_SEED:-}" = "1" ]; then .venv/bin/python -m bot.seed --if-empty; fi

pids=()
cleanup() { trap - INT TERM EXIT; for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait || true; }
stop() { cleanup; exit 0; }
trap stop INT TERM
trap cleanup EXIT
wait_healthy() {  # url pid name: bounded wait until the process answers its health URL
  for _ in $(seq 1 600); do
    if curl -fsS "$1" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$2" 2>/dev/null; then echo "$3 failed to start; see var/logs/$3.log" >&2; tail -20 "var/logs/$3.log" >&2; exit 1; fi
    sleep 0.5
  done
  echo "$3 did not answer $1 in 300 s" >&2; exit 1
}

lb=(--public "$LB_BIND" --rasa-api "127.0.0.1:${LB_RASA_API_PORT}" --actions-bind "127.0.0.1:${LB_ACTIONS_PORT}"
    --stats "127.0.0.1:${LB_STATS_PORT}" --stats-socket "$PWD/var/run/haproxy.sock")
for i in $(seq 0 $((ACTION_REPLICAS - 1))); do
  port=$((ACTION_PORT + i))
  .venv/bin/python -m bot.action_server --port "$port" >"var/logs/actions-$port.log" 2>&1 &
  pids+=($!); lb+=(--action "127.0.0.1:$port")
  wait_healthy "http://127.0.0.1:${port}/health" "$!" "actions-$port"
done
for i in $(seq 0 $((CRM_INGESTORS - 1))); do
  # each ingestor acknowledges a batch after its CRM transaction commits
  CONCIERGE_CRM_SOURCE=pika .venv/bin/python -m bot.crm.ingestor >"var/logs/crm-$i.log" 2>&1 &
  pids+=($!)
done
# Rasa replicas start one after the other: loading a model takes a core and about 1 GB each
for i in $(seq 0 $((RASA_REPLICAS - 1))); do
  port=$((RASA_PORT + i))
  .venv-rasa/bin/python scripts/rasa_run.py run -m "$MODEL" -i 127.0.0.1 --port "$port" \
    --endpoints deploy/production/endpoints.yml --credentials credentials.yml --cors "${CORS_ORIGINS[@]}" \
    --enable-api >"var/logs/rasa-$port.log" 2>&1 &  # the API token is added in-process (scripts/rasa_run.py)
  pids+=($!); lb+=(--rasa "127.0.0.1:$port")
  wait_healthy "http://127.0.0.1:${port}/" "$!" "rasa-$port"
done
for i in $(seq 0 $((WEB_REPLICAS - 1))); do
  port=$((WEB_PORT + i))
  .venv/bin/python -m bot.web --host 127.0.0.1 --port "$port" >"var/logs/web-$port.log" 2>&1 &
  pids+=($!); lb+=(--web "127.0.0.1:$port")
  wait_healthy "http://127.0.0.1:${port}/healthz" "$!" "web-$port"
done
.venv/bin/python deploy/haproxy/render_config.py "${lb[@]}" >var/run/haproxy.cfg
"$HAPROXY" -c -q -f var/run/haproxy.cfg
"$HAPROXY" -db -f var/run/haproxy.cfg >var/logs/haproxy.log 2>&1 &
haproxy_pid=$!
pids+=("$haproxy_pid")
wait_healthy "$CONCIERGE_PUBLIC_URL/healthz" "$haproxy_pid" haproxy
echo "Concierge behind HAProxy on ${CONCIERGE_PUBLIC_URL} (shop, /socket.io/, /webhooks/, /console):"
echo "  ${RASA_REPLICAS} Rasa, ${ACTION_REPLICAS} action server(s), ${WEB_REPLICAS} web apps, ${CRM_INGESTORS} CRM ingestor(s)"
echo "  server status: http://127.0.0.1:${LB_STATS_PORT}/stats   config: var/run/haproxy.cfg   logs: var/logs/"
echo "  drain a server: echo 'disable server rasa_socketio/rasa0' | socat stdio var/run/haproxy.sock (docs/production.md)"
echo "Ctrl-C stops everything."
# a replica that dies is taken out by HAProxy's health checks (see the status page) and the others go
# on; the profile stops when HAProxy itself stops
wait "$haproxy_pid"
