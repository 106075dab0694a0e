package metrics_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/metrics"
)

func TestNewRejectsNilRegisterer(t *testing.T) {
	if _, err := metrics.New(nil); err == nil {
		t.Fatal("New(nil) accepted a nil registerer")
	}
}

// TestNewTwiceOnOneRegistryFails: a second Metrics value on a registry that
// holds the first one's series is refused with the registry's error, and
// leaves nothing of its own registered.
func TestNewTwiceOnOneRegistryFails(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := metrics.New(reg); err != nil {
		t.Fatal(err)
	}
	before, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	_, err = metrics.New(reg)
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) {
		t.Fatalf("second New on the same registry = %v, want a prometheus.AlreadyRegisteredError", err)
	}
	if !strings.HasPrefix(err.Error(), "metrics:") || !strings.Contains(err.Error(), "lavinmq_") {
		t.Errorf("error %q does not say which series clashed", err)
	}
	t.Logf("second New: %v", err)
	after, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Errorf("families %d after the failed New, %d before", len(after), len(before))
	}
}

// TestNewUnregistersWhatItRegisteredWhenOneSeriesClashes: when only one of
// its series clashes, New fails and takes back the ones it had registered,
// so a later attempt on the same registry is not refused for them.
func TestNewUnregistersWhatItRegisteredWhenOneSeriesClashes(t *testing.T) {
	reg := prometheus.NewRegistry()
	// Same name, help and labels as ours (the registry remembers a name's
	// labels even after Unregister), registered by someone else.
	clash := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lavinmq_consumer_acks_total", Help: "Handler results Ack."}, []string{"queue"})
	reg.MustRegister(clash)
	if _, err := metrics.New(reg); err == nil {
		t.Fatal("New registered over a series of the same name")
	}
	reg.Unregister(clash)
	if _, err := metrics.New(reg); err != nil {
		t.Fatalf("New after the clash was removed: %v (the failed New left series behind)", err)
	}
}

func TestClientHooksFeedSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	const a = "orders-service"
	m.OnConnected(lavinmq.ConnectedEvent{Client: a, Endpoint: "127.0.0.1:5672", Attempts: 1})
	m.OnDisconnected(lavinmq.DisconnectedEvent{Client: a, Endpoint: "127.0.0.1:5672", Err: errors.New("x"), DetectedBy: lavinmq.DetectedByPoll})
	m.OnReconnectAttempt(lavinmq.ReconnectAttemptEvent{Client: a, Attempt: 1})
	m.OnReconnectAttempt(lavinmq.ReconnectAttemptEvent{Client: a, Attempt: 2})
	m.OnConnected(lavinmq.ConnectedEvent{Client: a, Attempts: 3, Reconnect: true, Downtime: 250 * time.Millisecond})
	m.OnBlocked(lavinmq.BlockedEvent{Client: a, Blocked: true, Reason: "low on memory"})
	m.OnTopologyError(lavinmq.TopologyErrorEvent{Client: a, Kind: "queue", Name: "q", Err: errors.New("406")})

	c := map[string]string{"client": a}
	for name, want := range map[string]float64{
		"lavinmq_client_connected":                    1,
		"lavinmq_client_blocked":                      1,
		"lavinmq_client_reconnects_total":             1,
		"lavinmq_client_reconnect_attempts_total":     2,
		"lavinmq_client_topology_replay_errors_total": 1,
		"lavinmq_client_disconnected_seconds":         1, // sample count
	} {
		if got := value(t, reg, name, c); got != want {
			t.Errorf("%s%v = %v, want %v", name, c, got, want)
		}
	}
	for r, want := range map[string]float64{"poll": 1, "notify": 0} {
		if got := value(t, reg, "lavinmq_client_disconnects_total", map[string]string{"client": a, "reason": r}); got != want {
			t.Errorf("disconnects_total{reason=%s} = %v, want %v", r, got, want)
		}
	}
	if got := histogramSum(t, reg, "lavinmq_client_disconnected_seconds", c); got != 0.25 {
		t.Errorf("disconnected_seconds sum = %v, want 0.25", got)
	}
	m.OnDisconnected(lavinmq.DisconnectedEvent{Client: a, DetectedBy: lavinmq.DetectedByNotify})
	if got := value(t, reg, "lavinmq_client_blocked", c); got != 0 {
		t.Errorf("blocked = %v after the connection was lost, want 0 (a block ends with its connection)", got)
	}
	lintClean(t, reg)
}

// TestClientSeriesAreLabelledByClient: two clients fed to one Metrics value
// keep apart, every client_* series carries the client label and nothing
// else but the disconnect reason.
func TestClientSeriesAreLabelledByClient(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.OnConnected(lavinmq.ConnectedEvent{Client: "a", Attempts: 1})
	m.OnConnected(lavinmq.ConnectedEvent{Client: "b", Attempts: 1})
	m.OnBlocked(lavinmq.BlockedEvent{Client: "b", Blocked: true})
	m.OnDisconnected(lavinmq.DisconnectedEvent{Client: "a", DetectedBy: lavinmq.DetectedByNotify})
	m.OnReconnectAttempt(lavinmq.ReconnectAttemptEvent{Client: "a", Attempt: 1})
	m.OnConnected(lavinmq.ConnectedEvent{Client: "a", Attempts: 2, Reconnect: true, Downtime: time.Second})
	m.OnDisconnected(lavinmq.DisconnectedEvent{Client: "a", DetectedBy: lavinmq.DetectedByNotify})

	for _, tc := range []struct {
		name   string
		client string
		want   float64
	}{
		{"lavinmq_client_connected", "a", 0},
		{"lavinmq_client_connected", "b", 1},
		{"lavinmq_client_blocked", "a", 0},
		{"lavinmq_client_blocked", "b", 1},
		{"lavinmq_client_reconnects_total", "a", 1},
		{"lavinmq_client_reconnects_total", "b", 0},
		{"lavinmq_client_reconnect_attempts_total", "a", 1},
		{"lavinmq_client_reconnect_attempts_total", "b", 0},
		{"lavinmq_client_disconnected_seconds", "a", 1},
		{"lavinmq_client_disconnected_seconds", "b", 0},
	} {
		if got := value(t, reg, tc.name, map[string]string{"client": tc.client}); got != tc.want {
			t.Errorf("%s{client=%q} = %v, want %v", tc.name, tc.client, got, tc.want)
		}
	}
	if got := value(t, reg, "lavinmq_client_disconnects_total", map[string]string{"client": "a", "reason": "notify"}); got != 2 {
		t.Errorf("disconnects_total{client=a,reason=notify} = %v, want 2", got)
	}
	checkLabels(t, reg)
	lintClean(t, reg)
}

// TestClientLabelValueIsValidUTF8: an event with a name that is not UTF-8
// (hand-made: lavinmq.New refuses such names) neither panics the hook nor
// breaks the scrape.
func TestClientLabelValueIsValidUTF8(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.OnConnected(lavinmq.ConnectedEvent{Client: "bad\xff", Attempts: 1})
	if _, err := reg.Gather(); err != nil {
		t.Fatalf("scrape failed: %v", err)
	}
	if got := value(t, reg, "lavinmq_client_connected", map[string]string{"client": "bad\uFFFD"}); got != 1 {
		t.Errorf("connected{client=bad\\uFFFD} = %v, want 1", got)
	}
}
