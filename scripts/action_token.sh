#!/usr/bin/env bash
# Prints the Rasa -> action server shared secret: $CONCIERGE_ACTION_TOKEN, else the one in
# ${CONCIERGE_VAR_DIR:-var}/action.key, created (random, mode 0600) on first use. The action server
# (bot/settings.py) reads the same file, endpoints.yml sends it as "Authorization: Bearer ...".
set -euo pipefail
if [ -n "${CONCIERGE_ACTION_TOKEN:-}" ]; then printf '%s' "$CONCIERGE_ACTION_TOKEN"; exit 0; fi
cd "$(dirname "$0")/.."
key="${CONCIERGE_VAR_DIR:-var}/${KEY_NAME:-action.key}"  # KEY_NAME=rasa_api.key: the Rasa HTTP API token (run.sh)
mkdir -p "$(dirname "$key")"
if [ ! -s "$key" ]; then
  (umask 077; head -c 48 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' >"$key.tmp.$$" && mv -n "$key.tmp.$$" "$key"; rm -f "$key.tmp.$$")
fi
tr -d '\n' <"$key"
