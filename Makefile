# lavinmq-go: `make test` and `make demo` work on a fresh machine with only Go installed:
# scripts/broker.sh installs RabbitMQ from apt when it is missing and starts a private node on 127.0.0.1.
# BROKER=lavinmq (e.g. `BROKER=lavinmq make test`) runs every target against a private LavinMQ node instead
# (scripts/lavinmq.sh: the binary from LAVINMQ_BIN, PATH or ../shared/lavinmq). The default is RabbitMQ.
SHELL := /bin/bash
BROKER ?= rabbitmq
export BROKER
export BROKER_NAME ?= lavinmq-go
export BROKER_PORT ?= 5680
export LAVINMQ_NAME ?= lavinmq-go
export LAVINMQ_PORT ?= 5681
ifeq ($(BROKER),rabbitmq)
BROKER_SCRIPT := scripts/broker.sh
else ifeq ($(BROKER),lavinmq)
BROKER_SCRIPT := scripts/lavinmq.sh
else
$(error BROKER=$(BROKER): want rabbitmq (the default) or lavinmq)
endif
TEST_URL = $(shell $(BROKER_SCRIPT) url)
# The node's TLS listener and the certificates of its tests (see scripts/broker.sh, scripts/lavinmq.sh).
# LAVINMQ_TEST_BROKER tells internal/testbroker which broker it drives (restart, kill, force-close).
TEST_ENV = LAVINMQ_TEST_BROKER=$(BROKER) LAVINMQ_TEST_URL=$(TEST_URL) LAVINMQ_TEST_TLS_URL=$(shell $(BROKER_SCRIPT) tls-url) LAVINMQ_TEST_TLS_DIR=$(shell $(BROKER_SCRIPT) tls-dir)
# Under BROKER=lavinmq the LavinMQ-only tests (stream numbering, delivery counts) run too; on RabbitMQ
# they are skipped with a message, as they need a LavinMQ node.
ifeq ($(BROKER),lavinmq)
TEST_ENV += LAVINMQ_TEST_LAVINMQ_URL=$(TEST_URL)
endif
GO_TEST_FLAGS ?= -race -count=1 -timeout 20m

.PHONY: test unit chaos demo tracing-demo bench broker-start broker-stop vet fuzz

broker-start:
	$(BROKER_SCRIPT) start

broker-stop:
	$(BROKER_SCRIPT) stop

vet:
	go vet ./...
	go vet -tags chaos ./...

## test: start the broker, vet, run unit and integration tests with the race detector.
## -p 1: packages share the broker, and some tests close every connection on it (close_all_connections).
test: broker-start vet
	$(TEST_ENV) go test $(GO_TEST_FLAGS) -p 1 ./...

## unit: tests that need no broker
unit:
	go test -race -count=1 ./buffer/

## chaos: destructive scenarios (broker restarts, alarms, cluster) behind the chaos build tag
chaos: broker-start
	$(TEST_ENV) go test -tags chaos $(GO_TEST_FLAGS) -run 'Chaos' -p 1 ./...

## demo: publish and consume through a broker restart, print a verdict
demo: broker-start
	LAVINMQ_URL=$(TEST_URL) go run ./examples/demo -restart-cmd '$(BROKER_SCRIPT) restart'

## tracing-demo: print the OpenTelemetry spans of one message through a reconnect
tracing-demo: broker-start
	LAVINMQ_URL=$(TEST_URL) go run ./examples/tracing

## bench: a quick end-to-end benchmark run against the local broker (under 5 minutes)
bench: broker-start
	bench/run.sh --quick

fuzz:
	go test -run '^$$' -fuzz FuzzRingMatchesSliceModel -fuzztime 30s ./buffer/
