#!/usr/bin/env bash
# Production profile on one machine: PostgreSQL (customer DB + tracker store), Redis lock store,
# RabbitMQ event broker, one action server and RASA_REPLICAS Rasa servers on consecutive ports.
# Put a load balancer of your choice in front of the replicas. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD" TF_CPP_MIN_LOG_LEVEL=2 SQLALCHEMY_SILENCE_UBER_WARNING=1
: "${DATABASE_URL:=postgresql+psycopg2://root@127.0.0.1:5432/test}"
: "${TRACKER_DB_HOST:=127.0.0.1}" "${TRACKER_DB_PORT:=5432}" "${TRACKER_DB_NAME:=test}"
: "${TRACKER_DB_USER:=root}" "${TRACKER_DB_PASSWORD:=}"
: "${REDIS_HOST:=127.0.0.1}" "${REDIS_PORT:=6379}" "${REDIS_DB:=1}"
: "${RABBITMQ_HOST:=127.0.0.1}" "${RABBITMQ_PORT:=5672}" "${RABBITMQ_USER:=guest}" "${RABBITMQ_PASSWORD:=guest}"
: "${RABBITMQ_QUEUE:=concierge_events}"
: "${RASA_REPLICAS:=2}" "${RASA_PORT:=5005}" "${ACTION_PORT:=5055}"
export DATABASE_URL TRACKER_DB_HOST TRACKER_DB_PORT TRACKER_DB_NAME TRACKER_DB_USER TRACKER_DB_PASSWORD \
       REDIS_HOST REDIS_PORT REDIS_DB RABBITMQ_HOST RABBITMQ_PORT RABBITMQ_USER RABBITMQ_PASSWORD RABBITMQ_QUEUE
# socket.io rooms shared by the replicas (an agent's reply sent through any replica reaches the widget);
# the load balancer must keep a socket on one replica (sticky sessions, or websocket-only clients)
: "${CONCIERGE_SOCKETIO_REDIS_URL:=redis://${REDIS_HOST}:${REDIS_PORT}/${REDIS_DB}}"
# rate limits, the messaging replay cache and SMS/WhatsApp numbered options shared by the replicas
: "${CONCIERGE_SHARED_REDIS_URL:=redis://${REDIS_HOST}:${REDIS_PORT}/${REDIS_DB}}"
export CONCIERGE_SOCKETIO_REDIS_URL CONCIERGE_SHARED_REDIS_URL
export ACTION_ENDPOINT_URL="http://127.0.0.1:${ACTION_PORT}/webhook"
CONCIERGE_ACTION_TOKEN="$(scripts/action_token.sh)"  # Rasa -> action server shared secret
export CONCIERGE_ACTION_TOKEN
MODEL="${MODEL:-models/concierge.tar.gz}"
mkdir -p var/logs

.venv/bin/python -m bot.db.migrate
.venv/bin/python -m bot.seed --if-empty

pids=()
cleanup() { trap - INT TERM EXIT; for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait || true; }
trap cleanup INT TERM EXIT
.venv/bin/python -m bot.action_server --port "$ACTION_PORT" >var/logs/actions.log 2>&1 &
pids+=($!)
# the CRM ingestor consumes RABBITMQ_QUEUE and acknowledges each batch after its CRM transaction commits
CONCIERGE_CRM_SOURCE=pika .venv/bin/python -m bot.crm.ingestor >var/logs/crm.log 2>&1 &
pids+=($!)
for i in $(seq 0 $((RASA_REPLICAS - 1))); do
  port=$((RASA_PORT + i))
  .venv-rasa/bin/rasa run -m "$MODEL" --port "$port" --endpoints deploy/production/endpoints.yml \
    --credentials credentials.yml --cors "*" >"var/logs/rasa-$port.log" 2>&1 &
  pids+=($!)
  echo "Rasa replica on http://localhost:${port}"
done
echo "Action server on http://localhost:${ACTION_PORT}, CRM ingestor on queue ${RABBITMQ_QUEUE}. Logs in var/logs/. Ctrl-C stops everything."
wait -n "${pids[@]}"
