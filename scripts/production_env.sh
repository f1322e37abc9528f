# Sourced (bash) by scripts/run_production.sh and scripts/hosts.sh: the production profile's settings.
# Refuses (exit 78) without the required secrets and CORS origins, fills the defaults of every other
# setting and exports them. Why one file: the single-machine profile and the namespaced hosts
# (scripts/hosts.sh) must start their processes with the same environment. Set host addresses
# (REDIS_HOST, TRACKER_DB_HOST, RABBITMQ_HOST, LB_*) before sourcing it to change them.
missing=()
for name in CONCIERGE_IDENTITY_SECRET CONCIERGE_ACTION_TOKEN CONCIERGE_SESSION_SECRET RASA_API_TOKEN \
            CONCIERGE_CORS_ORIGINS; do
  [ -n "${!name:-}" ] || missing+=("$name")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "refusing to start the production profile: set ${missing[*]} (docs/production.md)" >&2
  exit 78
fi
read -r -a CORS_ORIGINS <<<"$CONCIERGE_CORS_ORIGINS"
for origin in "${CORS_ORIGINS[@]}"; do
  if [ "$origin" = "*" ]; then
    echo "refusing to start: CONCIERGE_CORS_ORIGINS must list the shop's origins, not '*'" >&2; exit 78
  fi
done

: "${DATABASE_URL:=postgresql+psycopg2://root@127.0.0.1:5432/test}"
: "${TRACKER_DB_HOST:=127.0.0.1}" "${TRACKER_DB_PORT:=5432}" "${TRACKER_DB_NAME:=test}"
: "${TRACKER_DB_USER:=root}" "${TRACKER_DB_PASSWORD:=}"
: "${REDIS_HOST:=127.0.0.1}" "${REDIS_PORT:=6379}" "${REDIS_DB:=1}"
: "${RABBITMQ_HOST:=127.0.0.1}" "${RABBITMQ_PORT:=5672}" "${RABBITMQ_USER:=guest}" "${RABBITMQ_PASSWORD:=guest}"
: "${RABBITMQ_QUEUE:=concierge_events}"
: "${RASA_REPLICAS:=2}" "${RASA_PORT:=5005}" "${ACTION_REPLICAS:=1}" "${ACTION_PORT:=5055}"
: "${WEB_REPLICAS:=2}" "${WEB_PORT:=8000}" "${CRM_INGESTORS:=1}"
# HAProxy: the public address (put TLS in front, or terminate it here) and its localhost-only frontends
: "${LB_BIND:=127.0.0.1:8080}" "${LB_RASA_API_PORT:=8081}" "${LB_ACTIONS_PORT:=8082}" "${LB_STATS_PORT:=8404}"
: "${CONCIERGE_PUBLIC_URL:=http://${LB_BIND/0.0.0.0/127.0.0.1}}"
export DATABASE_URL TRACKER_DB_HOST TRACKER_DB_PORT TRACKER_DB_NAME TRACKER_DB_USER TRACKER_DB_PASSWORD \
       REDIS_HOST REDIS_PORT REDIS_DB RABBITMQ_HOST RABBITMQ_PORT RABBITMQ_USER RABBITMQ_PASSWORD RABBITMQ_QUEUE \
       CONCIERGE_IDENTITY_SECRET CONCIERGE_ACTION_TOKEN CONCIERGE_SESSION_SECRET RASA_API_TOKEN
# socket.io rooms shared by the replicas (an agent's reply sent through any replica reaches the widget)
: "${CONCIERGE_SOCKETIO_REDIS_URL:=redis://${REDIS_HOST}:${REDIS_PORT}/${REDIS_DB}}"
# rate limits, the messaging replay cache and SMS/WhatsApp numbered options shared by the replicas
: "${CONCIERGE_SHARED_REDIS_URL:=redis://${REDIS_HOST}:${REDIS_PORT}/${REDIS_DB}}"
export CONCIERGE_SOCKETIO_REDIS_URL CONCIERGE_SHARED_REDIS_URL
# everything public goes through HAProxy: the widget's socket.io and the shop's links use its URL
export CONCIERGE_RASA_PUBLIC_URL="${CONCIERGE_RASA_PUBLIC_URL:-$CONCIERGE_PUBLIC_URL}"
export CONCIERGE_SHOP_URL="${CONCIERGE_SHOP_URL:-$CONCIERGE_PUBLIC_URL}"
# Rasa -> action servers and web apps -> Rasa's HTTP API (agents' replies) through HAProxy's local frontends
export ACTION_ENDPOINT_URL="http://127.0.0.1:${LB_ACTIONS_PORT}/webhook"
export CONCIERGE_RASA_API_URL="http://127.0.0.1:${LB_RASA_API_PORT}"
# Sanic (Rasa) takes the client's address from the X-Forwarded-For entry HAProxy appends (rate limits)
export SANIC_PROXIES_COUNT=1
