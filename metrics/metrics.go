package metrics

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics holds every series of the SDK. Pass it to lavinmq.WithHooks,
// producer.WithHooks and consumer.WithHooks; it implements their hook interfaces.
type Metrics struct {
	conn     connMetrics
	producer producerMetrics
	consumer consumerMetrics
}

// New creates the series and registers them with reg.
func New(reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		return nil, errors.New("metrics: nil registerer")
	}
	m := &Metrics{}
	cs := append(m.conn.init(), m.producer.init()...)
	cs = append(cs, m.consumer.init()...)
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: register: %w", err)
		}
	}
	return m, nil
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

func counterVec(subsystem, name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: subsystem, Name: name, Help: help}, labels)
}

func histogramVec(subsystem, name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Subsystem: subsystem, Name: name, Help: help, Buckets: buckets}, labels)
}

// latencyBuckets span 100µs to about 26s, for publish-to-confirm and handler durations.
var latencyBuckets = prometheus.ExponentialBuckets(0.0001, 4, 10)
