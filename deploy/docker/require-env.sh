#!/bin/sh
# Fails closed: refuses to start the command while any variable named in CONCIERGE_REQUIRED_ENV
# (space separated) is unset or empty. Why: the settings objects (bot/settings.py,
# concierge_rasa/settings.py) fall back to a random key made in the pod's own var/ when a secret is
# empty, which on several replicas means tokens signed by one pod are refused by the next.
set -eu
missing=""
for name in ${CONCIERGE_REQUIRED_ENV:-}; do
  case "$name" in
    ''|[!A-Za-z_]*|*[!A-Za-z0-9_]*) echo "CONCIERGE_REQUIRED_ENV: not a variable name: $name" >&2; exit 78 ;;
  esac
  eval "value=\${$name:-}"
  [ -n "$value" ] || missing="$missing $name"
done
if [ -n "$missing" ]; then
  echo "refusing to start: empty or unset:$missing (deploy/k8s: create the Secret first, README \"Production\")" >&2
  exit 78
fi
exec "$@"
