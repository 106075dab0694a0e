// Package metrics turns the SDK's hooks into Prometheus series
// (github.com/prometheus/client_golang). The core packages do not import
// Prometheus: this package implements their hook interfaces.
//
//	m, err := metrics.New(prometheus.DefaultRegisterer)
//	if err != nil {
//		return err
//	}
//	c, _ := lavinmq.New(url, lavinmq.WithHooks(m))
//	p, _ := producer.New(c, "orders", producer.WithHooks(m))
//	k, _ := consumer.New(c, "orders", consumer.WithHooks(m))
//
// Labels are "queue" and "reason" only, so cardinality stays bounded by the
// number of queues an application uses; no URL, host or password is ever a label.
// Every method is safe for concurrent use and cheap (an atomic add on a
// pre-resolved series), as hooks must be.
package metrics
