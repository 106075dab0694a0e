#!/usr/bin/env bash
# bench/run.sh [--quick | --soak [bench run flags]]: start the local broker (scripts/broker.sh, honouring BROKER_NAME/BROKER_PORT; or
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
#   bench/run.sh --soak    only the soak scenario (not in CI: 10 minutes at 200 msg/s, 1-64 KiB bodies, a broker restart
#                          every 2 minutes); writes soak.{json,csv,png} and regenerates the report. Flags after --soak go
#                          to `bench run`: bench/run.sh --soak -soak-duration 90s -soak-restart 30s
set -euo pipefail
cd "$(dirname "$0")/.."
quick="" soak=""
if [ "${1:-}" = "--quick" ]; then quick="-quick"; fi
if [ "${1:-}" = "--soak" ]; then soak="-soak"; shift; fi
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
if [ -n "$soak" ]; then
  # The soak writes its files before it judges them: regenerate the report either way, then fail if it failed.
  status=0
  bench/out/bench run -soak -url "$url" -out "$results" "$@" || status=$?
  if [ -f "$results/bench.json" ]; then bench/out/bench report -out "$results" -o "$report"; fi
  echo "bench/run.sh: soak results in $results/soak.{json,csv,png}, report in $report" >&2
  exit $status
fi
bench/out/bench run $quick -url "$url" -out "$results"
if [ -z "$quick" ]; then
  # The chaos table of REPORT.md: the destructive suite writes bench/results/chaos.{json,csv} (about 5 minutes).
  LAVINMQ_TEST_BROKER=$broker LAVINMQ_TEST_URL="$url" go test -tags chaos -race -count=1 -timeout 20m -run Chaos -p 1 ./chaos/
  [ "$broker" = rabbitmq ] || cp bench/results/chaos.json bench/results/chaos.csv "$results/"
fi
bench/out/bench report -out "$results" -o "$report"
echo "bench/run.sh: results in $results/, report in $report" >&2
