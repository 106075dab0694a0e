#!/usr/bin/env bash
# cluster.sh: a private 3-node RabbitMQ cluster on 127.0.0.1, for the chaos suite.
#
#   scripts/cluster.sh start          boot the three nodes together and join them (idempotent)
#   scripts/cluster.sh stop           stop every node and the shared epmd; no process is left behind
#   scripts/cluster.sh urls           print the three AMQP URLs, one per line
#   scripts/cluster.sh stop-node N    stop node N (1-3) gracefully
#   scripts/cluster.sh kill-node N    SIGKILL node N
#   scripts/cluster.sh start-node N   start node N again (it rejoins the cluster)
#   scripts/cluster.sh ctl N ARGS     rabbitmqctl against node N
#
# Every node is a scripts/broker.sh node: its own data directory, AMQP port 5710+N, distribution port
# 25710+N, one shared HOME (one Erlang cookie, written before the nodes boot) and one shared epmd.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLUSTER_DIR=${CLUSTER_DIR:-$ROOT/.broker/cluster}
CLUSTER_BASE_PORT=${CLUSTER_BASE_PORT:-5710}
export BROKER_HOME="$CLUSTER_DIR/home"
export BROKER_EPMD_PORT=${CLUSTER_EPMD_PORT:-4410}
export BROKER_EPMD_PIDFILE="$CLUSTER_DIR/epmd.pid"

node() { # N CMD ARGS...: run broker.sh for node N
  local n=$1
  shift
  BROKER_NAME="lmq-c$n" BROKER_PORT=$((CLUSTER_BASE_PORT + n)) BROKER_DIR="$CLUSTER_DIR/n$n" \
    BROKER_KEEP_EPMD=1 "$ROOT/scripts/broker.sh" "$@"
}

joined() { # N: node N lists lmq-c1 among its running nodes
  node "$1" ctl -q cluster_status --formatter json 2>/dev/null | grep -q '"running_nodes":\[[^]]*lmq-c1@localhost'
}

start() {
  mkdir -p "$CLUSTER_DIR"
  # One epmd for the three nodes, started before them so that they do not race to start their own.
  if ! { [ -f "$BROKER_EPMD_PIDFILE" ] && kill -0 "$(cat "$BROKER_EPMD_PIDFILE")" 2>/dev/null; }; then
    nohup epmd -address 127.0.0.1 -port "$BROKER_EPMD_PORT" >"$CLUSTER_DIR/epmd.out" 2>&1 &
    echo $! >"$BROKER_EPMD_PIDFILE"
    sleep 0.3
  fi
  local pids=()
  for n in 1 2 3; do
    node "$n" start &
    pids+=($!)
  done
  local rc=0
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  [ $rc = 0 ] || { echo "cluster.sh: a node failed to start" >&2; return 1; }
  for n in 2 3; do
    if ! joined "$n"; then
      echo "cluster.sh: joining lmq-c$n to lmq-c1" >&2
      node "$n" ctl -q stop_app
      node "$n" ctl -q reset
      node "$n" ctl -q join_cluster lmq-c1@localhost
      node "$n" ctl -q start_app
    fi
  done
  node 1 ctl -q await_online_nodes 3 --timeout 60 >/dev/null 2>&1 || true
  echo "cluster.sh: 3 nodes running" >&2
}

stop() {
  for n in 1 2 3; do node "$n" stop || true; done
  if [ -f "$BROKER_EPMD_PIDFILE" ] && kill -0 "$(cat "$BROKER_EPMD_PIDFILE")" 2>/dev/null; then
    kill "$(cat "$BROKER_EPMD_PIDFILE")" || true
  fi
  rm -f "$BROKER_EPMD_PIDFILE"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
urls) for n in 1 2 3; do echo "amqp://guest:guest@127.0.0.1:$((CLUSTER_BASE_PORT + n))/"; done ;;
stop-node) node "$2" stop ;;
kill-node) node "$2" kill ;;
start-node) node "$2" start ;;
ctl) n=$2 && shift 2 && node "$n" ctl "$@" ;;
*) echo "usage: $0 start|stop|urls|stop-node N|kill-node N|start-node N|ctl N ARGS" >&2; exit 2 ;;
esac
