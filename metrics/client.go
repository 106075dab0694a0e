package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

type connMetrics struct {
	up           prometheus.Gauge
	blocked      prometheus.Gauge
	reconnects   prometheus.Counter
	attempts     prometheus.Counter
	disconnects  *prometheus.CounterVec
	downtime     prometheus.Histogram
	topologyErrs prometheus.Counter
}

func (m *connMetrics) init() []prometheus.Collector {
	const sub = "client"
	m.up = gauge(sub, "connected", "1 while the client has a connection in service, else 0.")
	m.blocked = gauge(sub, "blocked", "1 while the broker blocks the connection (connection.blocked), else 0.")
	m.reconnects = counter(sub, "reconnects_total", "Connections made after a lost one.")
	m.attempts = counter(sub, "reconnect_attempts_total", "Failed connection attempts.")
	m.disconnects = counterVec(sub, "disconnects_total", "Lost connections, by the means that detected the loss (notify, poll).", "reason")
	m.downtime = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: sub, Name: "disconnected_seconds",
		Help:    "Time from a lost connection to the next one in service.",
		Buckets: prometheus.ExponentialBuckets(0.01, 4, 9),
	})
	m.topologyErrs = counter(sub, "topology_replay_errors_total", "Recorded declarations the broker refused when replayed after a reconnect.")
	for _, r := range []lavinmq.Detector{lavinmq.DetectedByNotify, lavinmq.DetectedByPoll} {
		m.disconnects.WithLabelValues(string(r))
	}
	return []prometheus.Collector{m.up, m.blocked, m.reconnects, m.attempts, m.disconnects, m.downtime, m.topologyErrs}
}

// OnConnected implements lavinmq.HookConnected.
func (m *Metrics) OnConnected(ev lavinmq.ConnectedEvent) {
	m.conn.up.Set(1)
	if ev.Reconnect {
		m.conn.reconnects.Inc()
		m.conn.downtime.Observe(ev.Downtime.Seconds())
	}
}

// OnDisconnected implements lavinmq.HookDisconnected.
func (m *Metrics) OnDisconnected(ev lavinmq.DisconnectedEvent) {
	m.conn.up.Set(0)
	m.conn.blocked.Set(0)
	m.conn.disconnects.WithLabelValues(string(ev.DetectedBy)).Inc()
}

// OnReconnectAttempt implements lavinmq.HookReconnectAttempt.
func (m *Metrics) OnReconnectAttempt(lavinmq.ReconnectAttemptEvent) { m.conn.attempts.Inc() }

// OnBlocked implements lavinmq.HookBlocked.
func (m *Metrics) OnBlocked(blocked bool, _ string) {
	if blocked {
		m.conn.blocked.Set(1)
	} else {
		m.conn.blocked.Set(0)
	}
}

// OnTopologyError implements lavinmq.HookTopologyError.
func (m *Metrics) OnTopologyError(string, string, error) { m.conn.topologyErrs.Inc() }

var (
	_ lavinmq.HookConnected        = (*Metrics)(nil)
	_ lavinmq.HookDisconnected     = (*Metrics)(nil)
	_ lavinmq.HookReconnectAttempt = (*Metrics)(nil)
	_ lavinmq.HookBlocked          = (*Metrics)(nil)
	_ lavinmq.HookTopologyError    = (*Metrics)(nil)
)
