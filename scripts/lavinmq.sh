#!/usr/bin/env bash
# lavinmq.sh: a private LavinMQ node on 127.0.0.1 for development, tests and CI (the twin of broker.sh).
#
#   scripts/lavinmq.sh start        find the binary, install libgc1 from apt if missing, start the node,
#                                   wait until AMQP and GET /api/overview answer
#   scripts/lavinmq.sh stop         SIGTERM the node's own pid and wait for it to exit
#   scripts/lavinmq.sh restart      stop then start (data is kept)
#   scripts/lavinmq.sh kill         SIGKILL the node (a crash; data is kept)
#   scripts/lavinmq.sh status       exit 0 when the node answers
#   scripts/lavinmq.sh url          print the AMQP URL
#   scripts/lavinmq.sh tls-url      print the AMQPS URL of the TLS listener (host localhost)
#   scripts/lavinmq.sh tls-dir      print the folder of the test certificates
#   scripts/lavinmq.sh http-url     print the base URL of the HTTP API
#   scripts/lavinmq.sh close-conns  force-close every client connection through the HTTP API
#
# The binary: $LAVINMQ_BIN, then `lavinmq` on PATH, then ../shared/lavinmq/lavinmq next to the repository
# (its SHA256SUMS is checked; LAVINMQ_SHARED_DIR names another folder, e.g. in a git worktree). Nothing is
# ever written next to the binary.
# Ports (all on 127.0.0.1): AMQP $LAVINMQ_PORT (default 5681), HTTP $LAVINMQ_HTTP_PORT (default
# LAVINMQ_PORT+10000), AMQPS $LAVINMQ_TLS_PORT (default LAVINMQ_PORT+20000; LAVINMQ_TLS=0 turns it off),
# clustering/replication listener $LAVINMQ_CLUSTERING_PORT (default LAVINMQ_PORT+30000; LavinMQ always opens
# it). Everything lives under $LAVINMQ_DIR (default .broker/lavinmq-<LAVINMQ_NAME>, git-ignored).
# TLS: the certificates come from `go run ./internal/certgen` (like broker.sh); LavinMQ 2.9.1 has no option to
# verify client certificates, so the listener accepts any client (tests of client certificates need RabbitMQ).
# Every process this script starts is recorded by pid and stopped by that pid, never by name.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LAVINMQ_NAME=${LAVINMQ_NAME:-lavinmq-go}
LAVINMQ_PORT=${LAVINMQ_PORT:-5681}
LAVINMQ_HTTP_PORT=${LAVINMQ_HTTP_PORT:-$((LAVINMQ_PORT + 10000))}
LAVINMQ_TLS=${LAVINMQ_TLS:-1}
LAVINMQ_TLS_PORT=${LAVINMQ_TLS_PORT:-$((LAVINMQ_PORT + 20000))}
LAVINMQ_CLUSTERING_PORT=${LAVINMQ_CLUSTERING_PORT:-$((LAVINMQ_PORT + 30000))}
LAVINMQ_DIR=${LAVINMQ_DIR:-$ROOT/.broker/lavinmq-$LAVINMQ_NAME}
LAVINMQ_START_TIMEOUT=${LAVINMQ_START_TIMEOUT:-60}
SHARED_BIN="${LAVINMQ_SHARED_DIR:-$ROOT/../shared/lavinmq}/lavinmq"
PIDFILE="$LAVINMQ_DIR/lavinmq.pid"
AUTH=guest:guest

log() { echo "lavinmq.sh: $*" >&2; }

# find_bin prints the path of the LavinMQ binary or fails naming the three places it looked.
find_bin() {
  if [ -n "${LAVINMQ_BIN:-}" ]; then
    [ -x "$LAVINMQ_BIN" ] || { log "LAVINMQ_BIN=$LAVINMQ_BIN is not an executable file"; return 1; }
    echo "$LAVINMQ_BIN"
    return 0
  fi
  if command -v lavinmq >/dev/null 2>&1; then
    command -v lavinmq
    return 0
  fi
  if [ -x "$SHARED_BIN" ]; then
    local dir
    dir=$(cd "$(dirname "$SHARED_BIN")" && pwd)
    # sha256sum -c reads the folder, writes nothing there (it may be read-only).
    if ! (cd "$dir" && sha256sum --quiet -c SHA256SUMS >&2); then
      log "$dir/lavinmq does not match $dir/SHA256SUMS; refusing to run it"
      return 1
    fi
    echo "$dir/lavinmq"
    return 0
  fi
  log "no LavinMQ binary found: looked at \$LAVINMQ_BIN (unset), \`lavinmq\` on PATH (none) and $SHARED_BIN (missing)"
  return 1
}

# libgc_if_missing installs libgc1 from apt when the binary cannot load libgc.so.1.
libgc_if_missing() {
  local bin=$1
  ldd "$bin" 2>/dev/null | grep -q 'libgc.so.1 => not found' || return 0
  log "libgc1 is missing; installing it from apt"
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q >/dev/null
  $sudo apt-get install -y -q --no-install-recommends libgc1 >/dev/null
}

ensure_certs() {
  [ "$LAVINMQ_TLS" != 0 ] || return 0
  [ -f "$LAVINMQ_DIR/tls/other-client.key" ] && [ -f "$LAVINMQ_DIR/tls/server.key" ] && return 0
  command -v go >/dev/null || { log "go is needed to make the TLS certificates (or set LAVINMQ_TLS=0)"; return 1; }
  log "making test certificates in $LAVINMQ_DIR/tls"
  (cd "$ROOT" && go run ./internal/certgen -dir "$LAVINMQ_DIR/tls")
}

alive() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

http() { # METHOD PATH: call the HTTP API, print the body
  curl -fsS --max-time 10 -u "$AUTH" -X "$1" "http://127.0.0.1:$LAVINMQ_HTTP_PORT$2"
}

amqp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$LAVINMQ_PORT") 2>/dev/null; }

answers() { amqp_open && http GET /api/overview >/dev/null 2>&1; }

start() {
  local bin
  bin=$(find_bin)
  libgc_if_missing "$bin"
  mkdir -p "$LAVINMQ_DIR/data" "$LAVINMQ_DIR/log"
  ensure_certs
  if alive && answers; then
    log "node $LAVINMQ_NAME already running on 127.0.0.1:$LAVINMQ_PORT"
    return 0
  fi
  local tls=(--amqps-port=-1)
  if [ "$LAVINMQ_TLS" != 0 ]; then
    tls=(--amqps-port="$LAVINMQ_TLS_PORT" --cert "$LAVINMQ_DIR/tls/server.pem" --key "$LAVINMQ_DIR/tls/server.key")
  fi
  log "starting LavinMQ $LAVINMQ_NAME on 127.0.0.1:$LAVINMQ_PORT (HTTP $LAVINMQ_HTTP_PORT, data in $LAVINMQ_DIR)"
  # A clean environment: LavinMQ reads LAVINMQ_* variables (ours included).
  env -i PATH=/usr/bin:/bin HOME="$LAVINMQ_DIR" nohup "$bin" \
    --data-dir="$LAVINMQ_DIR/data" --log-level=warn --bind=127.0.0.1 \
    --amqp-bind=127.0.0.1 --amqp-port="$LAVINMQ_PORT" "${tls[@]}" \
    --http-bind=127.0.0.1 --http-port="$LAVINMQ_HTTP_PORT" --https-port=-1 \
    --mqtt-port=-1 --mqtts-port=-1 --metrics-http-port=-1 \
    --clustering-bind=127.0.0.1 --clustering-port="$LAVINMQ_CLUSTERING_PORT" \
    --control-unix-path="$LAVINMQ_DIR/lavinmqctl.sock" --default-user-only-loopback=true \
    >>"$LAVINMQ_DIR/log/server.out" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  local deadline=$((SECONDS + LAVINMQ_START_TIMEOUT))
  until answers; do
    if ! alive; then
      log "node exited during start; last lines of its output:"
      tail -n 30 "$LAVINMQ_DIR/log/server.out" >&2 || true
      rm -f "$PIDFILE"
      return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      log "node did not answer within ${LAVINMQ_START_TIMEOUT}s"
      tail -n 30 "$LAVINMQ_DIR/log/server.out" >&2 || true
      return 1
    fi
    sleep 0.1
  done
  log "node $LAVINMQ_NAME is up ($(url))"
}

wait_gone() { # seconds
  local i=0
  while alive && [ $i -lt $(($1 * 10)) ]; do sleep 0.1; i=$((i + 1)); done
  if alive; then
    log "node did not exit within ${1}s; SIGKILL"
    kill -9 "$(cat "$PIDFILE")" 2>/dev/null || true
    sleep 0.2
  fi
}

stop() {
  if alive; then
    log "stopping $LAVINMQ_NAME"
    kill -TERM "$(cat "$PIDFILE")" 2>/dev/null || true
    wait_gone 30
  fi
  rm -f "$PIDFILE"
}

crash() {
  if alive; then
    log "killing $LAVINMQ_NAME (SIGKILL)"
    kill -9 "$(cat "$PIDFILE")" 2>/dev/null || true
    wait_gone 10
  fi
  rm -f "$PIDFILE"
}

urlencode() { # STRING: percent-encode everything but unreserved characters
  local s=$1 out="" c i
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case "$c" in [a-zA-Z0-9.~_-]) out+=$c ;; *) out+=$(printf '%%%02X' "'$c") ;; esac
  done
  echo "$out"
}

# close_conns force-closes every client connection (LavinMQ sends connection.close 320 CONNECTION_FORCED).
close_conns() {
  local names n=0
  names=$(http GET '/api/connections?columns=name' | grep -o '"name":"[^"]*"' | sed 's/^"name":"//; s/"$//') || true
  while IFS= read -r name; do
    [ -n "$name" ] || continue
    curl -fsS --max-time 10 -u "$AUTH" -X DELETE -H 'X-Reason: lavinmq-go test' \
      "http://127.0.0.1:$LAVINMQ_HTTP_PORT/api/connections/$(urlencode "$name")" >/dev/null || true
    n=$((n + 1))
  done <<<"$names"
  log "closed $n connection(s)"
}

url() { echo "amqp://guest:guest@127.0.0.1:$LAVINMQ_PORT/"; }

tls_url() {
  [ "$LAVINMQ_TLS" != 0 ] || { log "TLS is off (LAVINMQ_TLS=0)"; return 1; }
  echo "amqps://guest:guest@localhost:$LAVINMQ_TLS_PORT/"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
restart) stop && start ;;
kill) crash ;;
status) alive && answers ;;
url) url ;;
tls-url) tls_url ;;
tls-dir) echo "$LAVINMQ_DIR/tls" ;;
http-url) echo "http://127.0.0.1:$LAVINMQ_HTTP_PORT" ;;
close-conns) close_conns ;;
*) echo "usage: $0 start|stop|restart|kill|status|url|tls-url|tls-dir|http-url|close-conns" >&2; exit 2 ;;
esac
