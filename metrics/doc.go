// Package metrics turns the SDK's hooks into Prometheus series
// (github.com/prometheus/client_golang). The core packages do not import
// Prometheus: this package implements their hook interfaces.
//
//	m, err := metrics.New(prometheus.DefaultRegisterer)
//	if err != nil {
//		return err
//	}
//	c, _ := lavinmq.New(url, lavinmq.WithConnectionName("orders-api"), lavinmq.WithHooks(m))
//	p, _ := producer.New(c, "orders", producer.WithHooks(m))
//	k, _ := consumer.New(c, "orders", consumer.WithHooks(m))
//
// One Metrics value serves any number of clients, producers and consumers;
// create one per registry (a second New on the same registry fails with the
// registry's AlreadyRegisteredError).
//
// Labels: client_* series carry "client", the client's name
// (lavinmq.Client.Name: the WithConnectionName value, or a generated
// "lavinmq-go-" + 8 hex digits when none is given), and disconnects_total also
// "reason". Producer and consumer series carry "queue" (and "reason" for drops
// and nacks) only; routing keys, URLs and hosts never become labels.
//
// Client names must be unique per registry: two clients with the same name
// share their series, so their connected and blocked gauges overwrite each
// other (the last event wins) and their counters add up. The name is exported
// as it is, so it must not hold a secret. A client's series appear at its
// first event (a connection or a failed attempt) and stay after Close with
// their last values: lavinmq sends no hook event for Close, so connected keeps
// reading 1 for a client closed while connected.
//
// In FireAndForget mode a message written to the socket counts in
// lavinmq_producer_messages_written_total and, as in producer.Stats, in
// messages_confirmed_total (so accepted = confirmed + dropped + buffered +
// in flight), but never in the confirm-latency histogram, which holds broker
// acks only.
//
// Every method is safe for concurrent use and cheap (a map lookup and an
// atomic add), as hooks must be. Label values
// that are not UTF-8 (AMQP allows any bytes in a queue name) have their bad
// bytes replaced by U+FFFD rather than panic.
package metrics
