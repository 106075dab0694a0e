package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

// connMetrics holds the client_* series, labelled by client (the client's
// Name, carried by every lavinmq hook event). A client's series are created
// at its first event and cached, so an event costs a map lookup and an
// atomic operation.
type connMetrics struct {
	up           *prometheus.GaugeVec
	blocked      *prometheus.GaugeVec
	reconnects   *prometheus.CounterVec
	attempts     *prometheus.CounterVec
	disconnects  *prometheus.CounterVec
	downtime     *prometheus.HistogramVec
	topologyErrs *prometheus.CounterVec

	mu      sync.Mutex
	clients map[string]*clientSeries // by client name
}

// clientSeries are one client's series, resolved once.
type clientSeries struct {
	up, blocked          prometheus.Gauge
	reconnects, attempts prometheus.Counter
	disconnects          map[lavinmq.Detector]prometheus.Counter
	downtime             prometheus.Observer
	topologyErrs         prometheus.Counter
}

var detectors = []lavinmq.Detector{lavinmq.DetectedByNotify, lavinmq.DetectedByPoll}

func (m *connMetrics) init() []prometheus.Collector {
	const sub = "client"
	m.clients = map[string]*clientSeries{}
	m.up = gaugeVec(sub, "connected", "1 while the client has a connection in service, else 0.", "client")
	m.blocked = gaugeVec(sub, "blocked", "1 while the broker blocks the client's connection (connection.blocked), else 0.", "client")
	m.reconnects = counterVec(sub, "reconnects_total", "Connections made after a lost one.", "client")
	m.attempts = counterVec(sub, "reconnect_attempts_total", "Failed connection attempts.", "client")
	m.disconnects = counterVec(sub, "disconnects_total", "Lost connections, by the means that detected the loss (notify, poll).", "client", "reason")
	m.downtime = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: sub, Name: "disconnected_seconds",
		Help:    "Time from a lost connection to the next one in service.",
		Buckets: prometheus.ExponentialBuckets(0.01, 4, 9),
	}, []string{"client"})
	m.topologyErrs = counterVec(sub, "topology_replay_errors_total", "Recorded declarations the broker refused when replayed after a reconnect.", "client")
	return []prometheus.Collector{m.up, m.blocked, m.reconnects, m.attempts, m.disconnects, m.downtime, m.topologyErrs}
}

// series returns the series of the client named name, creating all of them
// (at 0) at its first event. A name that is not valid UTF-8 (lavinmq.New
// refuses those; a hand-made event may not) has its bad bytes replaced, as
// a label value must be UTF-8.
func (m *connMetrics) series(name string) *clientSeries {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.clients[name]; s != nil {
		return s
	}
	l := label(name)
	s := &clientSeries{
		up:           m.up.WithLabelValues(l),
		blocked:      m.blocked.WithLabelValues(l),
		reconnects:   m.reconnects.WithLabelValues(l),
		attempts:     m.attempts.WithLabelValues(l),
		disconnects:  make(map[lavinmq.Detector]prometheus.Counter, len(detectors)),
		downtime:     m.downtime.WithLabelValues(l),
		topologyErrs: m.topologyErrs.WithLabelValues(l),
	}
	for _, d := range detectors {
		s.disconnects[d] = m.disconnects.WithLabelValues(l, string(d))
	}
	m.clients[name] = s
	return s
}

// OnConnected implements lavinmq.HookConnected.
func (m *Metrics) OnConnected(ev lavinmq.ConnectedEvent) {
	s := m.conn.series(ev.Client)
	s.up.Set(1)
	if ev.Reconnect {
		s.reconnects.Inc()
		s.downtime.Observe(ev.Downtime.Seconds())
	}
}

// OnDisconnected implements lavinmq.HookDisconnected. A block ends with its
// connection, so blocked drops to 0 too.
func (m *Metrics) OnDisconnected(ev lavinmq.DisconnectedEvent) {
	s := m.conn.series(ev.Client)
	s.up.Set(0)
	s.blocked.Set(0)
	if c := s.disconnects[ev.DetectedBy]; c != nil {
		c.Inc()
	} else {
		m.conn.disconnects.WithLabelValues(label(ev.Client), label(string(ev.DetectedBy))).Inc()
	}
}

// OnReconnectAttempt implements lavinmq.HookReconnectAttempt.
func (m *Metrics) OnReconnectAttempt(ev lavinmq.ReconnectAttemptEvent) {
	m.conn.series(ev.Client).attempts.Inc()
}

// OnBlocked implements lavinmq.HookBlocked.
func (m *Metrics) OnBlocked(ev lavinmq.BlockedEvent) {
	s := m.conn.series(ev.Client)
	if ev.Blocked {
		s.blocked.Set(1)
	} else {
		s.blocked.Set(0)
	}
}

// OnTopologyError implements lavinmq.HookTopologyError.
func (m *Metrics) OnTopologyError(ev lavinmq.TopologyErrorEvent) {
	m.conn.series(ev.Client).topologyErrs.Inc()
}

var (
	_ lavinmq.HookConnected        = (*Metrics)(nil)
	_ lavinmq.HookDisconnected     = (*Metrics)(nil)
	_ lavinmq.HookReconnectAttempt = (*Metrics)(nil)
	_ lavinmq.HookBlocked          = (*Metrics)(nil)
	_ lavinmq.HookTopologyError    = (*Metrics)(nil)
)
