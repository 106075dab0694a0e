package metrics

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics holds every series of the SDK. Pass it to lavinmq.WithHooks,
// producer.WithHooks and consumer.WithHooks; it implements their hook
// interfaces. One Metrics value serves any number of clients, producers and
// consumers: client series are labelled by the client's name, producer and
// consumer series by queue. Create one per registry.
type Metrics struct {
	conn     connMetrics
	producer producerMetrics
	consumer consumerMetrics
}

// New creates the series and registers them with reg. It fails when reg
// already holds series of these names, for example those of another Metrics
// value (the error wraps the registry's, a prometheus.AlreadyRegisteredError
// for a duplicate); it then unregisters what it had registered. Pass the one
// Metrics value to every client, producer and consumer instead.
func New(reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		return nil, errors.New("metrics: nil registerer")
	}
	m := &Metrics{}
	cs := append(m.conn.init(), m.producer.init()...)
	cs = append(cs, m.consumer.init()...)
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("metrics: register %s (is another metrics.Metrics on this registry? one serves every client, producer and consumer): %w", describe(c), err)
		}
	}
	return m, nil
}

// describe names the series of c, one of ours, for an error message. The
// largest of ours describes 7 series, so Describe never blocks on ch.
func describe(c prometheus.Collector) string {
	ch := make(chan *prometheus.Desc, 16)
	c.Describe(ch)
	close(ch)
	var names []string
	for d := range ch {
		names = append(names, fqName(d))
	}
	return strings.Join(names, ", ")
}

// fqName extracts the fully-qualified name from a Desc's String form
// (`Desc{fqName: "lavinmq_...", ...}`); client_golang has no accessor.
func fqName(d *prometheus.Desc) string {
	s := d.String()
	const key = `fqName: "`
	i := strings.Index(s, key)
	if i < 0 {
		return s
	}
	s = s[i+len(key):]
	if j := strings.IndexByte(s, '"'); j >= 0 {
		return s[:j]
	}
	return s
}

// Names follow Prometheus conventions: a lavinmq_ namespace, a subsystem per
// package, _total for counters, base units (seconds) in the name.
const namespace = "lavinmq"

func counter(subsystem, name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Subsystem: subsystem, Name: name, Help: help})
}

func gauge(subsystem, name, help string) prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Subsystem: subsystem, Name: name, Help: help})
}

func gaugeVec(subsystem, name, help string, labels ...string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Subsystem: subsystem, Name: name, Help: help}, labels)
}

func counterVec(subsystem, name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: subsystem, Name: name, Help: help}, labels)
}

func histogramVec(subsystem, name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Subsystem: subsystem, Name: name, Help: help, Buckets: buckets}, labels)
}

// label makes s a valid label value: Prometheus needs UTF-8 (and panics
// otherwise), while AMQP queue names may hold any bytes. Bad bytes become
// U+FFFD. A valid string is returned as is, without allocating.
func label(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// latencyBuckets span 100µs to about 26s, for publish-to-confirm and handler durations.
var latencyBuckets = prometheus.ExponentialBuckets(0.0001, 4, 10)
