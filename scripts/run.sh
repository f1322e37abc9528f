#!/usr/bin/env bash
# Start the action server (Python 3.11) and the Rasa server (Python 3.10) on localhost.
# Ctrl-C (or SIGTERM) stops both. With --shell, opens a terminal chat instead of the HTTP server.
set -euo pipefail
cd "$(dirname "$0")/.."
RASA_PORT="${RASA_PORT:-5005}"
ACTION_PORT="${ACTION_PORT:-5055}"
WEB_PORT="${WEB_PORT:-8000}"
export RASA_PORT WEB_PORT  # the web app and the action server derive their public URLs from them
# origins allowed to reach the Rasa server from a browser (the shop page): CONCIERGE_CORS_ORIGINS="https://a https://b"
read -r -a CORS_ORIGINS <<<"${CONCIERGE_CORS_ORIGINS:-*}"
MODEL="${MODEL:-models/concierge.tar.gz}"
mkdir -p var/logs
export PYTHONPATH="$PWD" TF_CPP_MIN_LOG_LEVEL=2 SQLALCHEMY_SILENCE_UBER_WARNING=1
export ACTION_ENDPOINT_URL="http://127.0.0.1:${ACTION_PORT}/webhook"
# Rasa's SQLite tracker store and SQL event broker (endpoints.yml); the CRM ingestor reads the broker file
VAR_DIR="${CONCIERGE_VAR_DIR:-$PWD/var}"
mkdir -p "$VAR_DIR"
export CONCIERGE_TRACKER_DB="${CONCIERGE_TRACKER_DB:-$VAR_DIR/tracker.db}" CONCIERGE_EVENTS_DB="${CONCIERGE_EVENTS_DB:-$VAR_DIR/events.db}"
# Rasa -> action server shared secret (both processes read it; docs/security.md)
CONCIERGE_ACTION_TOKEN="$(scripts/action_token.sh)"
export CONCIERGE_ACTION_TOKEN
# Rasa's HTTP API (conversations, tracker edits) only with a token and on localhost. The agent console
# (web app) sends agents' replies through it: RASA_API_TOKEN, else a random one kept in var/rasa_api.key.
if [ -z "${RASA_API_TOKEN:-}" ]; then
  RASA_API_TOKEN="$(CONCIERGE_ACTION_TOKEN= CONCIERGE_VAR_DIR="$VAR_DIR" KEY_NAME=rasa_api.key scripts/action_token.sh)"
fi
export RASA_API_TOKEN
rasa_api=()
if [ -n "${RASA_API_TOKEN:-}" ]; then
  case "${RASA_HOST:-127.0.0.1}" in
    127.0.0.1|localhost|::1) rasa_api=(--enable-api) ;;  # scripts/rasa_run.py adds the token in-process (not in `ps`)
    *) echo "Refusing to expose Rasa's HTTP API on ${RASA_HOST}: keep RASA_HOST on localhost (README, Security)" >&2; exit 1 ;;
  esac
fi

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo; echo "Stopping Concierge..."
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  echo "Stopped."
}
# Ctrl-C or SIGTERM is how a user stops it: a clean stop exits 0 (without this the status was the
# signalled child's, and make printed "Error 143"). Any other exit keeps its own status.
stop() { cleanup; exit 0; }
trap stop INT TERM
trap cleanup EXIT

echo "==> starting action server on :${ACTION_PORT} (log: var/logs/actions.log)"
.venv/bin/python -m bot.action_server --port "$ACTION_PORT" >var/logs/actions.log 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do
  if curl -fsS "http://127.0.0.1:${ACTION_PORT}/health" >/dev/null 2>&1; then break; fi
  if ! kill -0 "${pids[0]}" 2>/dev/null; then echo "action server failed to start; see var/logs/actions.log" >&2; tail -20 var/logs/actions.log >&2; exit 1; fi
  sleep 0.5
done
echo "==> starting the CRM ingestor: Rasa's events -> conversations and turns (log: var/logs/crm.log)"
.venv/bin/python -m bot.crm.ingestor >var/logs/crm.log 2>&1 &
pids+=($!)

if [ "${1:-}" = "--shell" ]; then
  .venv-rasa/bin/rasa shell -m "$MODEL" --endpoints endpoints.yml
  exit 0
fi

echo "==> starting Rasa server on :${RASA_PORT}"
.venv-rasa/bin/python scripts/rasa_run.py run -m "$MODEL" -i "${RASA_HOST:-127.0.0.1}" --port "$RASA_PORT" --endpoints endpoints.yml \
  --credentials credentials.yml --cors "${CORS_ORIGINS[@]}" --log-file var/logs/rasa.log \
  ${rasa_api[@]+"${rasa_api[@]}"} &
pids+=($!)
for _ in $(seq 1 240); do
  if curl -fsS "http://127.0.0.1:${RASA_PORT}/" >/dev/null 2>&1; then break; fi
  if ! kill -0 "${pids[-1]}" 2>/dev/null; then echo "Rasa server failed to start; see var/logs/rasa.log" >&2; exit 1; fi
  sleep 0.5
done
.venv/bin/python -m bot.web.users demo  # the console's demo agent and supervisor (README "Agent console")
echo "==> starting the web app (shop + chat widget + agent console) on :${WEB_PORT} (log: var/logs/web.log)"
.venv/bin/python -m bot.web --port "$WEB_PORT" >var/logs/web.log 2>&1 &
pids+=($!)
for _ in $(seq 1 60); do
  if curl -fsS "http://127.0.0.1:${WEB_PORT}/healthz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "${pids[-1]}" 2>/dev/null; then echo "web app failed to start; see var/logs/web.log" >&2; tail -20 var/logs/web.log >&2; exit 1; fi
  sleep 0.5
done
cat <<MSG

Concierge is running. Press Ctrl-C to stop all its servers.
  REST channel     POST http://localhost:${RASA_PORT}/webhooks/rest/webhook   {"sender": "me", "message": "hi"}
  socket.io        http://localhost:${RASA_PORT}/socket.io   (chat widgets such as rasa-webchat)
  action server    http://localhost:${ACTION_PORT}/health
  shop + widget    http://127.0.0.1:${WEB_PORT}/   (sign in as a demo customer and open the chat)
  agent console    http://127.0.0.1:${WEB_PORT}/console   (alex / concierge-agent-demo, sam / concierge-supervisor-demo)
  try:  curl -s localhost:${RASA_PORT}/webhooks/rest/webhook -d '{"sender":"demo","message":"where is my order 190001?"}'
        then the same with "alice.martin@example.com" (demo customers: README)

MSG
wait -n "${pids[@]}"
