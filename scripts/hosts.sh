#!/usr/bin/env bash
# The production topology as separate hosts on one machine (issue 23 §3, docs/production.md
# "Several hosts on one machine"): network namespaces joined by veth pairs to one bridge, so every
# request really crosses HAProxy and a network. Needs root (ip netns) and iproute2.
#
#   scripts/hosts.sh up          build the hosts and start everything (tears down a previous one first)
#   scripts/hosts.sh down        stop every process in the hosts, delete them and var/scale (idempotent)
#   scripts/hosts.sh start|stop|kill|restart NAME    one process (the bench's faults); NAME is one of
#       postgres redis rabbitmq crm haproxy actions1 actions2 rasa1 rasa2 web1 web2
#   scripts/hosts.sh status      the hosts and the state of each process
#
# Hosts (bridge cs-br0, 10.77.0.0/24, private; nothing is routed outside):
#   cs-lb   10.77.0.10  HAProxy (public :8080, Rasa API :8081, stats :8404)
#   cs-app1 10.77.0.11  Rasa :5005, action server :5055, web app :8000
#   cs-app2 10.77.0.12  the same
#   cs-svc  10.77.0.20  the bench's own PostgreSQL 15, Redis and RabbitMQ (data under var/scale/,
#                       never the machine's services on 127.0.0.1), and the CRM ingestor
# The app processes get scripts/production_env.sh's environment, as scripts/run_production.sh does;
# the same four secrets and CONCIERGE_CORS_ORIGINS are required (bench/scale.py generates them).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
STATE="$ROOT/var/scale"
RUN="$STATE/run"
LOGS="$STATE/logs"
NET=10.77.0
BRIDGE=cs-br0
declare -A ADDR=([lb]=$NET.10 [app1]=$NET.11 [app2]=$NET.12 [svc]=$NET.20)
PG_BIN="${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}"
RABBIT_SERVER="${RABBIT_SERVER:-$(ls /usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin/rabbitmq-server 2>/dev/null | sort -V | tail -1)}"
AS_POSTGRES=(setpriv --reuid=postgres --regid=postgres --init-groups)

host_of() {  # process name -> host
  case "$1" in
    postgres|redis|rabbitmq|crm) echo svc ;;
    haproxy) echo lb ;;
    *1) echo app1 ;;
    *2) echo app2 ;;
    *) echo "unknown process $1" >&2; exit 64 ;;
  esac
}

in_ns() { local host="$1"; shift; ip netns exec "cs-$host" "$@"; }

# ------------------------------------------------------------------ network
net_up() {
  ip link add "$BRIDGE" type bridge
  ip addr add "$NET.1/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  for host in lb app1 app2 svc; do
    ip netns add "cs-$host"
    ip link add "cs-$host-br" type veth peer name eth0 netns "cs-$host"
    ip link set "cs-$host-br" master "$BRIDGE" up
    in_ns "$host" ip addr add "${ADDR[$host]}/24" dev eth0
    in_ns "$host" ip link set eth0 up
    in_ns "$host" ip link set lo up
  done
}

net_down() {
  for host in lb app1 app2 svc; do
    if ip netns list | grep -qw "cs-$host"; then
      for pid in $(ip netns pids "cs-$host" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
      ip netns delete "cs-$host"
    fi
    ip link delete "cs-$host-br" 2>/dev/null || true
  done
  ip link delete "$BRIDGE" 2>/dev/null || true
}

# ------------------------------------------------------------------ environment of the app processes
app_env() {  # the production profile's settings with the svc host's services and the lb host's frontends
  export PYTHONPATH="$ROOT" TF_CPP_MIN_LOG_LEVEL=2 SQLALCHEMY_SILENCE_UBER_WARNING=1
  export DATABASE_URL="postgresql+psycopg2://postgres@${ADDR[svc]}:5432/concierge"
  export TRACKER_DB_HOST="${ADDR[svc]}" TRACKER_DB_NAME=concierge TRACKER_DB_USER=postgres TRACKER_DB_PASSWORD=
  export REDIS_HOST="${ADDR[svc]}" REDIS_DB=0 RABBITMQ_HOST="${ADDR[svc]}" RABBITMQ_USER=concierge
  export RABBITMQ_PASSWORD="${SCALE_RABBITMQ_PASSWORD:-concierge-bench}"
  export LB_BIND="${ADDR[lb]}:8080" LB_RASA_API_PORT=8081 LB_STATS_PORT=8404
  # shellcheck source=production_env.sh
  source scripts/production_env.sh
  # each app host's Rasa calls its own action server; the web apps reach Rasa's API through the lb host
  export ACTION_ENDPOINT_URL="http://127.0.0.1:5055/webhook"
  export CONCIERGE_RASA_API_URL="http://${ADDR[lb]}:8081"
}

# ------------------------------------------------------------------ processes
launch() {  # name cmd...: in its host, its own process group, pid in var/scale/run/NAME.pid
  local name="$1"; shift
  local host; host="$(host_of "$name")"
  setsid ip netns exec "cs-$host" "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
}

pid_of() { cat "$RUN/$1.pid" 2>/dev/null || true; }
alive() { local pid; pid="$(pid_of "$1")"; [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }

wait_for() {  # name what cmd...: bounded wait until cmd succeeds in the name's host
  local name="$1" what="$2"; shift 2
  local host; host="$(host_of "$name")"
  for _ in $(seq 1 600); do
    if in_ns "$host" "$@" >/dev/null 2>&1; then return 0; fi
    if ! alive "$name"; then echo "$name failed to start; see $LOGS/$name.log" >&2; tail -20 "$LOGS/$name.log" >&2; return 1; fi
    sleep 0.5
  done
  echo "$name: $what not ready in 300 s" >&2; return 1
}

HTTP_OK=(curl -fsS -o /dev/null --max-time 2)  # a command, not a function: it runs through ip netns exec

start() {
  local name="$1" host
  host="$(host_of "$name")"
  local ip="${ADDR[$host]}"
  case "$name" in
    postgres)
      launch postgres "${AS_POSTGRES[@]}" "$PG_BIN/postgres" -D "$STATE/pg/data" -c "listen_addresses=$ip" \
        -c "unix_socket_directories=$STATE/pg/run" -c max_connections=200
      wait_for postgres "connections" "${AS_POSTGRES[@]}" "$PG_BIN/pg_isready" -q -h "$ip" ;;
    redis)
      launch redis redis-server --bind "$ip" --port 6379 --protected-mode no --save "" --appendonly no \
        --dir "$STATE/redis"
      wait_for redis "PING" redis-cli -h "$ip" ping ;;
    rabbitmq)
      launch rabbitmq env HOME="$STATE/rabbitmq/home" RABBITMQ_NODENAME=scale@localhost \
        RABBITMQ_MNESIA_BASE="$STATE/rabbitmq/mnesia" RABBITMQ_LOG_BASE="$STATE/rabbitmq/log" \
        RABBITMQ_CONFIG_FILE="$STATE/rabbitmq/rabbitmq.conf" RABBITMQ_ENABLED_PLUGINS_FILE="$STATE/rabbitmq/enabled_plugins" \
        RABBITMQ_PID_FILE="$STATE/rabbitmq/pid" "$RABBIT_SERVER"
      wait_for rabbitmq "AMQP port" bash -c "exec 3<>/dev/tcp/$ip/5672" ;;
    crm)
      launch crm env CONCIERGE_CRM_SOURCE=pika .venv/bin/python -m bot.crm.ingestor ;;
    actions*)
      launch "$name" .venv/bin/python -m bot.action_server --host 127.0.0.1 --port 5055
      wait_for "$name" "/health" "${HTTP_OK[@]}" http://127.0.0.1:5055/health ;;
    rasa*)
      read -r -a origins <<<"$CONCIERGE_CORS_ORIGINS"
      launch "$name" .venv-rasa/bin/python scripts/rasa_run.py run -m "${MODEL:-models/concierge.tar.gz}" \
        -i "$ip" --port 5005 --endpoints deploy/production/endpoints.yml --credentials credentials.yml \
        --cors "${origins[@]}" --enable-api
      wait_for "$name" "Rasa" "${HTTP_OK[@]}" "http://$ip:5005/" ;;
    web*)
      launch "$name" .venv/bin/python -m bot.web --host "$ip" --port 8000
      wait_for "$name" "/healthz" "${HTTP_OK[@]}" "http://$ip:8000/healthz" ;;
    haproxy)
      .venv/bin/python deploy/haproxy/render_config.py --public "$LB_BIND" --rasa-api "${ADDR[lb]}:8081" \
        --actions-bind "127.0.0.1:8082" --stats "${ADDR[lb]}:8404" --stats-socket "$RUN/haproxy.sock" \
        --rasa "${ADDR[app1]}:5005" --rasa "${ADDR[app2]}:5005" --web "${ADDR[app1]}:8000" --web "${ADDR[app2]}:8000" \
        --action "${ADDR[app1]}:5055" >"$RUN/haproxy.cfg"
      "$HAPROXY" -c -q -f "$RUN/haproxy.cfg"
      launch haproxy "$HAPROXY" -db -f "$RUN/haproxy.cfg"
      wait_for haproxy "/healthz" "${HTTP_OK[@]}" "http://$LB_BIND/healthz" ;;
  esac
}

stop() {  # name [signal]: signals the process group, waits for it to end
  local name="$1" sig="${2:-TERM}" pid
  if [ "$name" = postgres ] && [ "$sig" = TERM ]; then sig=INT; fi  # fast shutdown (TERM waits for clients)
  pid="$(pid_of "$name")"
  [ -n "$pid" ] || return 0
  if [ "$name" = rabbitmq ] && [ "$sig" = TERM ] && [ -f "$STATE/rabbitmq/pid" ]; then
    kill -TERM "$(cat "$STATE/rabbitmq/pid")" 2>/dev/null || true  # the VM itself: a clean stop
  fi
  kill "-$sig" -- "-$pid" 2>/dev/null || true
  for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  if [ "$name" = rabbitmq ]; then  # epmd outlives the broker; the next start brings its own
    for p in $(ip netns pids cs-svc); do [ "$(cat "/proc/$p/comm" 2>/dev/null)" = epmd ] && kill -KILL "$p"; done
  fi
  rm -f "$RUN/$name.pid"
}

# ------------------------------------------------------------------ the whole topology
init_state() {
  rm -rf "$STATE"
  mkdir -p "$RUN" "$LOGS" "$STATE/redis" "$STATE/rabbitmq/home" "$STATE/rabbitmq/mnesia" "$STATE/rabbitmq/log" \
           "$STATE/pg/run"
  chmod 755 "$STATE"
  chown -R postgres:postgres "$STATE/pg"
  "${AS_POSTGRES[@]}" "$PG_BIN/initdb" -D "$STATE/pg/data" -U postgres -A trust >"$LOGS/initdb.log"
  # app hosts reach it over the bridge; the network is private to this machine's namespaces
  echo "host all all $NET.0/24 trust" >>"$STATE/pg/data/pg_hba.conf"
  cat >"$STATE/rabbitmq/rabbitmq.conf" <<EOF
listeners.tcp.default = 5672
default_user = concierge
default_pass = ${SCALE_RABBITMQ_PASSWORD:-concierge-bench}
EOF
  echo "[]." >"$STATE/rabbitmq/enabled_plugins"
}

up() {
  [ "$(id -u)" = 0 ] || { echo "scripts/hosts.sh needs root (ip netns)" >&2; exit 77; }
  [ -n "$PG_BIN" ] && [ -n "$RABBIT_SERVER" ] && command -v redis-server >/dev/null || {
    echo "needs PostgreSQL (/usr/lib/postgresql/*/bin), rabbitmq-server and redis-server installed" >&2; exit 69; }
  app_env
  HAPROXY="$(deploy/haproxy/install.sh)"
  down
  init_state
  net_up
  echo "hosts: ${!ADDR[*]} on $BRIDGE ($NET.0/24)" >&2
  for name in postgres redis rabbitmq; do start "$name"; echo "  svc: $name up" >&2; done
  in_ns svc "${AS_POSTGRES[@]}" "$PG_BIN/createdb" -h "${ADDR[svc]}" -U postgres concierge
  in_ns app1 .venv/bin/python -m bot.db.migrate >>"$LOGS/migrate.log" 2>&1
  in_ns app1 .venv/bin/python -c "from bot.seed import seed; import os; seed(os.environ['DATABASE_URL'], progress=None, \
seed=23, customers=200, products=320, orders=1500)" >>"$LOGS/seed.log" 2>&1
  echo "  svc: database migrated and seeded" >&2
  start crm
  for name in actions1 actions2 rasa1 rasa2 web1 web2; do start "$name"; echo "  $(host_of "$name"): $name up" >&2; done
  start haproxy
  echo "Concierge on http://$LB_BIND (HAProxy on cs-lb); stats http://${ADDR[lb]}:8404/stats; logs $LOGS" >&2
}

down() {
  net_down
  rm -rf "$STATE"
}

status() {
  ip netns list | grep '^cs-' || echo "no hosts"
  for name in postgres redis rabbitmq crm haproxy actions1 actions2 rasa1 rasa2 web1 web2; do
    if alive "$name"; then echo "$name: running ($(host_of "$name"))"; else echo "$name: stopped"; fi
  done
}

cmd="${1:-}"
case "$cmd" in
  up) up ;;
  down) down ;;
  status) status ;;
  start|restart)
    [ -n "${2:-}" ] || { echo "usage: $0 $cmd NAME" >&2; exit 64; }
    app_env
    HAPROXY="$(deploy/haproxy/install.sh)"
    if [ "$cmd" = restart ]; then stop "$2"; fi
    start "$2" ;;
  stop) stop "${2:?usage: $0 stop NAME}" ;;
  kill) stop "${2:?usage: $0 kill NAME}" KILL ;;
  *) sed -n '2,20p' "$0" >&2; exit 64 ;;
esac
