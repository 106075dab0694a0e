#!/usr/bin/env bash
# bench/run.sh [--quick]: start the local broker (scripts/broker.sh, honouring BROKER_NAME/BROKER_PORT; or
# scripts/lavinmq.sh with BROKER=lavinmq),
# run every benchmark scenario for the SDK and for plain amqp091-go (and, in the Confirm, consume, open-loop latency and
# outage rows, for amqp091-go + Config.Recovery and go-rabbitmq), the buffer microbenchmarks and the seed measurement,
# draw the plots, run the chaos suite (full run only), and regenerate REPORT.md from bench/results/.
# The outage scenario SIGKILLs the broker (scripts/broker.sh kill, or scripts/lavinmq.sh kill) and starts it again.
#   bench/run.sh           full run (5 samples, 100 000 messages per sample, latency and outage 3 samples each, then the
#                          chaos suite; about 27 minutes)
#   bench/run.sh --quick   quick run (3 samples, 20 000 messages, latency and outage once each, no chaos suite; about
#                          7 minutes), what `make bench` runs
# Only some scenarios: go build -o bench/out/bench ./bench && bench/out/bench run -only latency,outage -url URL -out DIR
set -euo pipefail
cd "$(dirname "$0")/.."
quick=""
if [ "${1:-}" = "--quick" ]; then quick="-quick"; fi
# BROKER=lavinmq: the same against a private LavinMQ node (scripts/lavinmq.sh); its results go to
# bench/results/lavinmq/ and its report to bench/results/lavinmq/REPORT.md (REPORT.md stays RabbitMQ's).
broker=${BROKER:-rabbitmq}
case "$broker" in
rabbitmq) script=scripts/broker.sh results=bench/results report=REPORT.md ;;
lavinmq) script=scripts/lavinmq.sh results=bench/results/lavinmq report=bench/results/lavinmq/REPORT.md ;;
*) echo "bench/run.sh: BROKER=$broker: want rabbitmq or lavinmq" >&2; exit 2 ;;
esac
export BROKER=$broker
$script start
url=$($script url)
mkdir -p bench/out "$results"
go build -o bench/out/bench ./bench
bench/out/bench run $quick -url "$url" -out "$results"
if [ -z "$quick" ]; then
  # The chaos table of REPORT.md: the destructive suite writes bench/results/chaos.{json,csv} (about 5 minutes).
  LAVINMQ_TEST_BROKER=$broker LAVINMQ_TEST_URL="$url" go test -tags chaos -race -count=1 -timeout 20m -run Chaos -p 1 ./chaos/
  [ "$broker" = rabbitmq ] || cp bench/results/chaos.json bench/results/chaos.csv "$results/"
fi
bench/out/bench report -out "$results" -o "$report"
echo "bench/run.sh: results in $results/, report in $report" >&2
