package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/c3ecadf2/lavinmq-go/producer"
)

// producerMetrics reads every live producer's Stats at scrape time (so the
// publish path pays nothing for them) and keeps the final counts of closed
// producers, so counters never go down. Only the confirm latency
// (HookConfirmed) and the FireAndForget writes (HookWritten) are fed per
// message, through series resolved once per queue.
type producerMetrics struct {
	mu      sync.Mutex
	live    map[*producer.Producer]struct{}
	retired map[string]*producerTotals // by queue label value

	accepted, confirmed, dropped, resent *prometheus.Desc
	buffered, capacity, inFlight         *prometheus.Desc
	bufferedBytes, inFlightBytes         *prometheus.Desc
	capacityBytes                        *prometheus.Desc
	latency                              *prometheus.HistogramVec
	written                              *prometheus.CounterVec
	queues                               sync.Map // queue name -> *queueSeries
}

// queueSeries are the per-message series of one queue.
type queueSeries struct {
	latency prometheus.Observer
	written prometheus.Counter
}

// forQueue returns the per-message series of queue, resolving them at its
// first use (so they exist, at 0, from the producer's start).
func (m *producerMetrics) forQueue(queue string) *queueSeries {
	if s, ok := m.queues.Load(queue); ok {
		return s.(*queueSeries)
	}
	s, _ := m.queues.LoadOrStore(queue, &queueSeries{
		latency: m.latency.WithLabelValues(label(queue)),
		written: m.written.WithLabelValues(label(queue)),
	})
	return s.(*queueSeries)
}

type producerTotals struct {
	accepted, confirmed, resent uint64
	dropped                     map[producer.DropReason]uint64
}

func (t *producerTotals) add(s producer.Stats) {
	t.accepted += s.Accepted
	t.confirmed += s.Confirmed
	t.resent += s.Resent
	for r, n := range s.DroppedBy {
		t.dropped[r] += n
	}
}

func newTotals() *producerTotals {
	return &producerTotals{dropped: map[producer.DropReason]uint64{}}
}

func (m *producerMetrics) init() []prometheus.Collector {
	const sub = "producer"
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, sub, name), help, append([]string{"queue"}, labels...), nil)
	}
	m.live = map[*producer.Producer]struct{}{}
	m.retired = map[string]*producerTotals{}
	m.accepted = desc("messages_accepted_total", "Messages accepted by Publish.")
	m.confirmed = desc("messages_confirmed_total", "Messages settled: acked by the broker (Confirm mode) or written to the socket (FireAndForget, also counted in messages_written_total). accepted = confirmed + dropped + buffered + in flight.")
	m.dropped = desc("messages_dropped_total", "Accepted messages given up, by reason (evicted, nacked, unroutable, too_large, shutdown, invalid).", "reason")
	m.resent = desc("messages_resent_total", "Publications of unconfirmed messages again after a lost channel or connection, or a nack.")
	m.buffered = desc("buffered_messages", "Messages waiting in the producer's buffer.")
	m.capacity = desc("buffer_capacity_messages", "Capacity of the producer's buffer.")
	m.inFlight = desc("in_flight_messages", "Messages taken from the buffer and not yet confirmed.")
	m.bufferedBytes = desc("buffered_bytes", "Bytes (bodies, headers, string properties) of the messages waiting in the producer's buffer. buffered_bytes + in_flight_bytes <= buffer_capacity_bytes.")
	m.inFlightBytes = desc("in_flight_bytes", "Bytes of the messages taken from the buffer and not yet confirmed (on the wire or waiting to be re-sent).")
	m.capacityBytes = desc("buffer_capacity_bytes", "Byte budget of the producer (WithBufferBytes), for buffered and in-flight messages together.")
	m.latency = histogramVec(sub, "confirm_latency_seconds", "Time from Publish to the broker's ack, Confirm mode only.", latencyBuckets, "queue")
	m.written = counterVec(sub, "messages_written_total", "Messages handed to the socket without a confirm (FireAndForget mode); included in messages_confirmed_total.", "queue")
	return []prometheus.Collector{m, m.latency, m.written}
}

// Describe implements prometheus.Collector.
func (m *producerMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.accepted, m.confirmed, m.dropped, m.resent, m.buffered, m.capacity, m.inFlight, m.bufferedBytes, m.inFlightBytes, m.capacityBytes} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *producerMetrics) Collect(ch chan<- prometheus.Metric) {
	type gauges struct {
		buffered, capacity, inFlight                int
		bufferedBytes, inFlightBytes, capacityBytes int64
	}
	m.mu.Lock()
	totals := make(map[string]*producerTotals, len(m.retired)+len(m.live))
	g := map[string]*gauges{}
	for q, t := range m.retired {
		c := newTotals()
		c.add(producer.Stats{Accepted: t.accepted, Confirmed: t.confirmed, Resent: t.resent, DroppedBy: t.dropped})
		totals[q] = c
	}
	for p := range m.live {
		s := p.Stats()
		q := label(p.Queue())
		if totals[q] == nil {
			totals[q] = newTotals()
		}
		totals[q].add(s)
		if g[q] == nil {
			g[q] = &gauges{}
		}
		g[q].buffered += s.Buffered
		g[q].capacity += s.Capacity
		g[q].inFlight += s.InFlight
		g[q].bufferedBytes += s.BufferedBytes
		g[q].inFlightBytes += s.InFlightBytes
		g[q].capacityBytes += s.CapacityBytes
	}
	m.mu.Unlock()
	for q, t := range totals {
		ch <- prometheus.MustNewConstMetric(m.accepted, prometheus.CounterValue, float64(t.accepted), q)
		ch <- prometheus.MustNewConstMetric(m.confirmed, prometheus.CounterValue, float64(t.confirmed), q)
		ch <- prometheus.MustNewConstMetric(m.resent, prometheus.CounterValue, float64(t.resent), q)
		for _, r := range producer.DropReasons() {
			ch <- prometheus.MustNewConstMetric(m.dropped, prometheus.CounterValue, float64(t.dropped[r]), q, r.String())
		}
		x := g[q]
		if x == nil {
			x = &gauges{}
		}
		ch <- prometheus.MustNewConstMetric(m.buffered, prometheus.GaugeValue, float64(x.buffered), q)
		ch <- prometheus.MustNewConstMetric(m.capacity, prometheus.GaugeValue, float64(x.capacity), q)
		ch <- prometheus.MustNewConstMetric(m.inFlight, prometheus.GaugeValue, float64(x.inFlight), q)
		ch <- prometheus.MustNewConstMetric(m.bufferedBytes, prometheus.GaugeValue, float64(x.bufferedBytes), q)
		ch <- prometheus.MustNewConstMetric(m.inFlightBytes, prometheus.GaugeValue, float64(x.inFlightBytes), q)
		ch <- prometheus.MustNewConstMetric(m.capacityBytes, prometheus.GaugeValue, float64(x.capacityBytes), q)
	}
}

// OnProducerOpened implements producer.HookProducerOpened.
func (m *Metrics) OnProducerOpened(p *producer.Producer) {
	m.producer.forQueue(p.Queue())
	m.producer.mu.Lock()
	m.producer.live[p] = struct{}{}
	m.producer.mu.Unlock()
}

// OnProducerClosed implements producer.HookProducerClosed.
func (m *Metrics) OnProducerClosed(p *producer.Producer, final producer.Stats) {
	m.producer.mu.Lock()
	defer m.producer.mu.Unlock()
	if _, ok := m.producer.live[p]; !ok {
		return
	}
	delete(m.producer.live, p)
	q := label(p.Queue()) // retired and live totals are keyed by label value
	t := m.producer.retired[q]
	if t == nil {
		t = newTotals()
		m.producer.retired[q] = t
	}
	t.add(final)
}

// OnConfirmed implements producer.HookConfirmed: it observes the confirm latency.
func (m *Metrics) OnConfirmed(queue string, latency time.Duration) {
	m.producer.forQueue(queue).latency.Observe(latency.Seconds())
}

// OnWritten implements producer.HookWritten: it counts a FireAndForget write
// in messages_written_total, not in the confirm-latency histogram.
func (m *Metrics) OnWritten(queue string) {
	m.producer.forQueue(queue).written.Inc()
}

var (
	_ producer.HookProducerOpened = (*Metrics)(nil)
	_ producer.HookProducerClosed = (*Metrics)(nil)
	_ producer.HookConfirmed      = (*Metrics)(nil)
	_ producer.HookWritten        = (*Metrics)(nil)
)
