//go:build chaos

// Package chaos is the destructive test suite of lavinmq-go: broker
// restarts, memory and disk alarms, a queue deleted under its producer and
// consumer, network faults through an in-process toxiproxy, node failures in a
// 3-node RabbitMQ cluster, and 20 clients whose connections are all closed at
// once. It lives behind the build tag chaos because it restarts and alarms the
// broker it is given.
//
// Run it with
//
//	make chaos
//
// which starts the project's broker and runs
// `go test -tags chaos -race -count=1 -timeout 20m -run Chaos -p 1 ./...`
// with LAVINMQ_TEST_URL set. By hand, on a private broker:
//
//	export BROKER_NAME=lmq-chaos BROKER_PORT=5720
//	scripts/broker.sh start
//	export LAVINMQ_TEST_URL=$(scripts/broker.sh url)
//	go test -tags chaos -race -count=1 -run Chaos -p 1 -v ./chaos/
//
// The restart and crash scenarios drive the broker through internal/testbroker:
// scripts/broker.sh restart|kill|start with the BROKER_NAME and BROKER_PORT of
// the environment, or with LAVINMQ_TEST_BROKER=lavinmq (`BROKER=lavinmq make
// chaos`) scripts/lavinmq.sh with LAVINMQ_NAME and LAVINMQ_PORT (make exports
// them), so they must name the broker LAVINMQ_TEST_URL points at. The cluster
// scenario boots its own three nodes with scripts/cluster.sh (AMQP ports
// 5711-5713) and stops them at the end. A scenario that cannot run on a broker
// (alarms and the cluster on LavinMQ) is skipped there and recorded as a row
// with its reason in not_run (notOn), never skipped silently.
//
// # What every scenario measures
//
// Each scenario publishes a known set of distinct messages (the body is the
// 8-byte big-endian sequence number), consumes them, and reports one row:
//
//   - published: messages accepted by Publish (rejected: Publish errors, e.g. buffer.Raise)
//   - confirmed: acked by the broker (Confirm) or written to the socket (FireAndForget)
//   - dropped, by reason: reported through producer.OnDrop
//   - received: distinct sequence numbers the consumer saw
//   - lost: accepted, never received and never reported dropped
//   - duplicates: deliveries beyond the first of a sequence number
//   - max_publish_call_ms: the longest single Publish call
//   - max_confirm_gap_ms: the longest time without a confirm while publishing
//   - recovery_ms: per fault, from the moment the fault ended (broker up again,
//     alarm cleared, toxic removed, node stopped, connections closed) until the
//     producer had a new confirm and the consumer a new delivery
//
// In Confirm mode lost must be 0 or the test fails. FireAndForget rows report
// their loss (allowed, at-most-once) and say why.
//
// The rows are also written, once, after all tests ran (TestMain), to
// bench/results/chaos.json and bench/results/chaos.csv under the repository
// root, and logged with t.Log. Each row names its broker; the rows of the
// other broker already in chaos.json are kept, so `make chaos` then
// `BROKER=lavinmq make chaos` leaves one table of both.
package chaos
