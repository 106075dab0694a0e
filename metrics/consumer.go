package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/c3ecadf2/lavinmq-go/consumer"
)

type consumerMetrics struct {
	deliveries   *prometheus.CounterVec
	acks         *prometheus.CounterVec
	nacks        *prometheus.CounterVec
	panics       *prometheus.CounterVec
	staleAcks    *prometheus.CounterVec
	resubscribes *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	discarded    *prometheus.CounterVec
	subFailures  *prometheus.CounterVec
}

func (m *consumerMetrics) init() []prometheus.Collector {
	const sub = "consumer"
	m.deliveries = counterVec(sub, "deliveries_total", "Deliveries handed to the handler.", "queue")
	m.acks = counterVec(sub, "acks_total", "Handler results Ack.", "queue")
	m.nacks = counterVec(sub, "nacks_total", "Handler results NackRequeue (reason requeue) or NackDiscard (reason discard), panics included.", "queue", "reason")
	m.panics = counterVec(sub, "handler_panics_total", "Handler panics recovered.", "queue")
	m.staleAcks = counterVec(sub, "stale_acks_total", "Acks and nacks not applied because the delivery's channel was gone; the broker redelivers.", "queue")
	m.resubscribes = counterVec(sub, "resubscribes_total", "Subscriptions made again after a lost connection, channel error or basic.cancel.", "queue")
	m.duration = histogramVec(sub, "handler_duration_seconds", "Time the handler took per delivery.", latencyBuckets, "queue")
	m.discarded = counterVec(sub, "discarded_total", "Deliveries the consumer discarded by itself (reason max_redeliveries); also in nacks_total{reason=\"discard\"}.", "queue", "reason")
	m.subFailures = counterVec(sub, "subscribe_failures_total", "Failed subscribe attempts (no such queue, access refused...); retried with backoff.", "queue")
	return []prometheus.Collector{m.deliveries, m.acks, m.nacks, m.panics, m.staleAcks, m.resubscribes, m.duration, m.discarded, m.subFailures}
}

// OnDelivered implements consumer.HookDelivered.
func (m *Metrics) OnDelivered(queue string) {
	m.consumer.deliveries.WithLabelValues(label(queue)).Inc()
}

// OnHandled implements consumer.HookHandled.
func (m *Metrics) OnHandled(queue string, a consumer.Action, d time.Duration) {
	switch a {
	case consumer.Ack:
		m.consumer.acks.WithLabelValues(label(queue)).Inc()
	case consumer.NackDiscard:
		m.consumer.nacks.WithLabelValues(label(queue), "discard").Inc()
	default:
		m.consumer.nacks.WithLabelValues(label(queue), "requeue").Inc()
	}
	m.consumer.duration.WithLabelValues(label(queue)).Observe(d.Seconds())
}

// OnPanic implements consumer.HookPanic.
func (m *Metrics) OnPanic(queue string, _ any) { m.consumer.panics.WithLabelValues(label(queue)).Inc() }

// OnStaleAck implements consumer.HookStaleAck.
func (m *Metrics) OnStaleAck(queue string) { m.consumer.staleAcks.WithLabelValues(label(queue)).Inc() }

// OnResubscribed implements consumer.HookResubscribed.
func (m *Metrics) OnResubscribed(queue string) {
	m.consumer.resubscribes.WithLabelValues(label(queue)).Inc()
}

// OnDiscarded implements consumer.HookDiscarded.
func (m *Metrics) OnDiscarded(queue, reason string) {
	m.consumer.discarded.WithLabelValues(label(queue), reason).Inc()
}

// OnSubscribeFailed implements consumer.HookSubscribeFailed.
func (m *Metrics) OnSubscribeFailed(queue string, _ error, _ int) {
	m.consumer.subFailures.WithLabelValues(label(queue)).Inc()
}

var (
	_ consumer.HookDelivered       = (*Metrics)(nil)
	_ consumer.HookHandled         = (*Metrics)(nil)
	_ consumer.HookPanic           = (*Metrics)(nil)
	_ consumer.HookStaleAck        = (*Metrics)(nil)
	_ consumer.HookResubscribed    = (*Metrics)(nil)
	_ consumer.HookDiscarded       = (*Metrics)(nil)
	_ consumer.HookSubscribeFailed = (*Metrics)(nil)
)
