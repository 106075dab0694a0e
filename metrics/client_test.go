package metrics_test

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/metrics"
)

func TestNewRejectsNilRegisterer(t *testing.T) {
	if _, err := metrics.New(nil); err == nil {
		t.Fatal("New(nil) accepted a nil registerer")
	}
}

func TestNewTwiceOnOneRegistryFails(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := metrics.New(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := metrics.New(reg); err == nil {
		t.Fatal("second New on the same registry did not report the duplicate")
	}
}

func TestClientHooksFeedSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.OnConnected(lavinmq.ConnectedEvent{Endpoint: "127.0.0.1:5672", Attempts: 1})
	m.OnDisconnected(lavinmq.DisconnectedEvent{Endpoint: "127.0.0.1:5672", Err: errors.New("x"), DetectedBy: lavinmq.DetectedByPoll})
	m.OnReconnectAttempt(lavinmq.ReconnectAttemptEvent{Attempt: 1})
	m.OnReconnectAttempt(lavinmq.ReconnectAttemptEvent{Attempt: 2})
	m.OnBlocked(true, "low on memory")
	m.OnConnected(lavinmq.ConnectedEvent{Attempts: 3, Reconnect: true, Downtime: 250 * time.Millisecond})

	check := func(name string, got, want float64) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	expect := map[string]float64{
		"lavinmq_client_connected":                1,
		"lavinmq_client_blocked":                  1,
		"lavinmq_client_reconnects_total":         1,
		"lavinmq_client_reconnect_attempts_total": 2,
	}
	for name, want := range expect {
		n, err := testutil.GatherAndCount(reg, name)
		if err != nil || n != 1 {
			t.Fatalf("series %s: count %d, err %v", name, n, err)
		}
		_ = want
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, metric := range mf.GetMetric() {
			for _, l := range metric.GetLabel() {
				if l.GetName() != "queue" && l.GetName() != "reason" {
					t.Errorf("series %s has label %q; only queue and reason are allowed", mf.GetName(), l.GetName())
				}
			}
			if want, ok := expect[mf.GetName()]; ok {
				v := metric.GetGauge().GetValue() + metric.GetCounter().GetValue()
				check(mf.GetName(), v, want)
			}
			if mf.GetName() == "lavinmq_client_disconnects_total" && labelValue(metric.GetLabel(), "reason") == "poll" {
				check("disconnects_total{reason=poll}", metric.GetCounter().GetValue(), 1)
			}
			if mf.GetName() == "lavinmq_client_disconnected_seconds" {
				check("disconnected_seconds count", float64(metric.GetHistogram().GetSampleCount()), 1)
				check("disconnected_seconds sum", metric.GetHistogram().GetSampleSum(), 0.25)
			}
		}
	}
}
