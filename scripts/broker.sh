#!/usr/bin/env bash
# broker.sh: a private RabbitMQ node on 127.0.0.1 for development, tests and CI.
#
#   scripts/broker.sh start     install rabbitmq-server from apt if missing, start the node, wait until it answers
#   scripts/broker.sh stop      stop the node and its epmd; no process is left behind
#   scripts/broker.sh restart   stop then start (data is kept)
#   scripts/broker.sh status    exit 0 when the node answers
#   scripts/broker.sh url       print the AMQP URL
#   scripts/broker.sh tls-url   print the AMQPS URL of the TLS listener (host localhost: the name in its certificate)
#   scripts/broker.sh tls-dir   print the folder of the test certificates (ca.pem, client.pem/.key, other-*)
#   scripts/broker.sh ctl ARGS  run rabbitmqctl against the node (e.g. ctl close_all_connections test)
#   scripts/broker.sh kill      SIGKILL the node (a crash), leaving epmd running
#
# Everything lives under $BROKER_DIR (default: .broker/<name> in the repository, git-ignored).
# TLS: a second listener on 127.0.0.1:$BROKER_TLS_PORT (default BROKER_PORT+10000; BROKER_TLS=0 turns it
# off) with certificates made by `go run ./internal/certgen` in $BROKER_DIR/tls when they are missing. It
# asks clients for a certificate (verify_peer) and accepts clients without one (fail_if_no_peer_cert = false);
# a certificate it is shown must be signed by tls/ca.pem.
# The script owns $BROKER_DIR/rabbitmq.conf and rewrites it from the settings above; start restarts a running
# node whose configuration or certificates changed since it was started (e.g. a node started by an older
# script, without TLS), so that `make test` works on a fresh machine and on one with a node already running.
# Several nodes can run side by side with different BROKER_NAME / BROKER_PORT values.
# Every process this script starts is recorded by pid and stopped by that pid, never by name.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BROKER_NAME=${BROKER_NAME:-lavinmq-go}
BROKER_PORT=${BROKER_PORT:-5680}   # AMQP (avoid 35672-35682: rabbitmqctl uses those)
BROKER_DIST_PORT=${BROKER_DIST_PORT:-$((BROKER_PORT + 20000))}
BROKER_EPMD_PORT=${BROKER_EPMD_PORT:-$((BROKER_PORT - 1300))}
BROKER_TLS=${BROKER_TLS:-1}
BROKER_TLS_PORT=${BROKER_TLS_PORT:-$((BROKER_PORT + 10000))}
BROKER_DIR=${BROKER_DIR:-$ROOT/.broker/$BROKER_NAME}
BROKER_START_TIMEOUT=${BROKER_START_TIMEOUT:-90}
BROKER_HOME=${BROKER_HOME:-$BROKER_DIR/home}             # holds the Erlang cookie; shared by the nodes of a cluster
BROKER_EPMD_PIDFILE=${BROKER_EPMD_PIDFILE:-$BROKER_DIR/epmd.pid}
NODE="$BROKER_NAME@localhost"
RMQ_BIN=/usr/lib/rabbitmq/bin

log() { echo "broker.sh: $*" >&2; }

setup_env() {
  mkdir -p "$BROKER_HOME" "$BROKER_DIR/mnesia" "$BROKER_DIR/log"
  [ -f "$BROKER_DIR/enabled_plugins" ] || echo '[].' >"$BROKER_DIR/enabled_plugins"
  if [ ! -f "$BROKER_HOME/.erlang.cookie" ]; then
    # The cookie is written before the node boots, mode 400.
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr 'a-f' 'A-F' >"$BROKER_HOME/.erlang.cookie"
    chmod 400 "$BROKER_HOME/.erlang.cookie"
  fi
  export HOME="$BROKER_HOME"
  export RABBITMQ_NODENAME="$NODE"
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT="$BROKER_PORT"
  export RABBITMQ_DIST_PORT="$BROKER_DIST_PORT"
  export ERL_EPMD_ADDRESS=127.0.0.1
  export ERL_EPMD_PORT="$BROKER_EPMD_PORT"
  export RABBITMQ_MNESIA_BASE="$BROKER_DIR/mnesia"
  export RABBITMQ_LOG_BASE="$BROKER_DIR/log"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$BROKER_DIR/enabled_plugins"
  export RABBITMQ_PID_FILE="$BROKER_DIR/rabbitmq.pid"
  export RABBITMQ_CONFIG_FILE="$BROKER_DIR/rabbitmq"
  export RABBITMQ_ADVANCED_CONFIG_FILE="$BROKER_DIR/advanced.config"
  export RABBITMQ_CONF_ENV_FILE="$BROKER_DIR/rabbitmq-env.conf"
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS='-kernel inet_dist_use_interface {127,0,0,1}'
  touch "$RABBITMQ_CONF_ENV_FILE"
  [ -f "$BROKER_DIR/advanced.config" ] || echo '[].' >"$BROKER_DIR/advanced.config"
  write_conf
}

# desired_conf prints the node's rabbitmq.conf.
desired_conf() {
  echo "log.file.level = warning"
  echo "log.console = false"
  if [ "$BROKER_TLS" != 0 ]; then
    local d="$BROKER_DIR/tls"
    cat <<EOF
listeners.ssl.default = 127.0.0.1:$BROKER_TLS_PORT
ssl_options.cacertfile = $d/ca.pem
ssl_options.certfile = $d/server.pem
ssl_options.keyfile = $d/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = false
EOF
  fi
}

# write_conf (re)writes rabbitmq.conf when its content is not the desired one.
write_conf() {
  local want
  want=$(desired_conf)
  if [ ! -f "$BROKER_DIR/rabbitmq.conf" ] || [ "$(cat "$BROKER_DIR/rabbitmq.conf")" != "$want" ]; then
    printf '%s\n' "$want" >"$BROKER_DIR/rabbitmq.conf"
  fi
}

# ensure_certs makes the TLS listener's certificates when any is missing.
ensure_certs() {
  [ "$BROKER_TLS" != 0 ] || return 0
  [ -f "$BROKER_DIR/tls/other-client.key" ] && [ -f "$BROKER_DIR/tls/server.key" ] && return 0
  command -v go >/dev/null || { log "go is needed to make the TLS certificates (or set BROKER_TLS=0)"; return 1; }
  log "making test certificates in $BROKER_DIR/tls"
  (cd "$ROOT" && go run ./internal/certgen -dir "$BROKER_DIR/tls")
}

# stamp prints what the node reads at boot: rabbitmq.conf and a checksum of the TLS files it names.
stamp() {
  cat "$BROKER_DIR/rabbitmq.conf"
  if [ "$BROKER_TLS" != 0 ]; then cat "$BROKER_DIR/tls/ca.pem" "$BROKER_DIR/tls/server.pem" "$BROKER_DIR/tls/server.key" | cksum; fi
}

# conf_changed: the running node was started with another configuration or other certificates (or by a
# script that did not record them).
conf_changed() { [ "$(stamp)" != "$(cat "$BROKER_DIR/rabbitmq.conf.started" 2>/dev/null)" ]; }

install_if_missing() {
  [ -x "$RMQ_BIN/rabbitmq-server" ] && return 0
  log "rabbitmq-server is not installed; installing it from apt"
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q >/dev/null
  $sudo apt-get install -y -q --no-install-recommends rabbitmq-server >/dev/null
  # The package may start a system-wide node under init systems; ours is private and does not need it.
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

ctl() { setup_env; "$RMQ_BIN/rabbitmqctl" -n "$NODE" "$@"; }

answers() { ctl -q status >/dev/null 2>&1; }

start_epmd() {
  if alive "$BROKER_EPMD_PIDFILE"; then return 0; fi
  nohup epmd -address 127.0.0.1 -port "$BROKER_EPMD_PORT" >"$BROKER_DIR/log/epmd.out" 2>&1 &
  echo $! >"$BROKER_EPMD_PIDFILE"
}

start() {
  install_if_missing
  setup_env
  ensure_certs
  if alive "$BROKER_DIR/server.pid" && answers; then
    if ! conf_changed; then
      log "node $NODE already running on 127.0.0.1:$BROKER_PORT"
      return 0
    fi
    log "configuration of $NODE changed since it started; restarting it"
    BROKER_KEEP_EPMD=1 stop
  fi
  start_epmd
  log "starting $NODE on 127.0.0.1:$BROKER_PORT (data in $BROKER_DIR)"
  stamp >"$BROKER_DIR/rabbitmq.conf.started"
  nohup "$RMQ_BIN/rabbitmq-server" >"$BROKER_DIR/log/server.out" 2>&1 </dev/null &
  echo $! >"$BROKER_DIR/server.pid"
  local deadline=$((SECONDS + BROKER_START_TIMEOUT))
  until "$RMQ_BIN/rabbitmqctl" -n "$NODE" -q await_startup --timeout 5 >/dev/null 2>&1; do
    if ! alive "$BROKER_DIR/server.pid"; then
      log "node exited during start; last lines of its output:"
      tail -n 30 "$BROKER_DIR/log/server.out" >&2 || true
      return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      log "node did not answer within ${BROKER_START_TIMEOUT}s"
      tail -n 30 "$BROKER_DIR/log/server.out" >&2 || true
      return 1
    fi
    sleep 0.5
  done
  log "node $NODE is up ($(url))"
}

wait_gone() { # pidfile seconds
  local i=0
  while alive "$1" && [ $i -lt $(($2 * 10)) ]; do sleep 0.1; i=$((i + 1)); done
  if alive "$1"; then kill_vm; kill -9 "$(cat "$1")" 2>/dev/null || true; sleep 0.2; fi
}

# kill_vm SIGKILLs the Erlang VM. server.pid holds the /bin/sh rabbitmq-server wrapper, which beam.smp
# would survive, orphaned and still serving; RabbitMQ writes the VM's own pid to RABBITMQ_PID_FILE.
kill_vm() {
  if alive "$BROKER_DIR/rabbitmq.pid"; then kill -9 "$(cat "$BROKER_DIR/rabbitmq.pid")" 2>/dev/null || true; fi
  rm -f "$BROKER_DIR/rabbitmq.pid"
}

stop() {
  setup_env
  if alive "$BROKER_DIR/server.pid"; then
    log "stopping $NODE"
    "$RMQ_BIN/rabbitmqctl" -n "$NODE" -q stop >/dev/null 2>&1 || kill "$(cat "$BROKER_DIR/server.pid")" 2>/dev/null || true
    wait_gone "$BROKER_DIR/server.pid" 30
  fi
  rm -f "$BROKER_DIR/server.pid"
  [ -n "${BROKER_KEEP_EPMD:-}" ] && return 0
  if alive "$BROKER_EPMD_PIDFILE"; then
    kill "$(cat "$BROKER_EPMD_PIDFILE")" 2>/dev/null || true
    wait_gone "$BROKER_EPMD_PIDFILE" 5
  fi
  rm -f "$BROKER_EPMD_PIDFILE"
}

crash() {
  setup_env
  if alive "$BROKER_DIR/server.pid"; then
    log "killing $NODE (SIGKILL)"
    kill_vm
    kill -9 "$(cat "$BROKER_DIR/server.pid")" 2>/dev/null || true
    wait_gone "$BROKER_DIR/server.pid" 10
  fi
  rm -f "$BROKER_DIR/server.pid"
}

url() { echo "amqp://guest:guest@127.0.0.1:$BROKER_PORT/"; }

# tls_url uses the host name localhost, the name in the server certificate (a URL with 127.0.0.1 fails
# verification unless the client sets tls.Config.ServerName). guest may log in: the peer is loopback.
tls_url() {
  [ "$BROKER_TLS" != 0 ] || { log "TLS is off (BROKER_TLS=0)"; return 1; }
  echo "amqps://guest:guest@localhost:$BROKER_TLS_PORT/"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
restart) stop && start ;;
status) setup_env && alive "$BROKER_DIR/server.pid" && answers ;;
url) url ;;
tls-url) tls_url ;;
tls-dir) echo "$BROKER_DIR/tls" ;;
ctl) shift && ctl "$@" ;;
kill) crash ;;
*) echo "usage: $0 start|stop|restart|status|url|tls-url|tls-dir|kill|ctl ARGS" >&2; exit 2 ;;
esac
