package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, testbroker.LeakOptions()...) }

// scrape fetches /metrics and returns each sample line's value by its series text.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

// TestMetricsExampleAfterReconnect runs the example through a proxy, cuts
// the connection, and scrapes the example's /metrics: the SDK's series are
// there with non-zero values.
func TestMetricsExampleAfterReconnect(t *testing.T) {
	px := testbroker.NewProxy(t)
	q := testbroker.Name(t, "metrics")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, px.URL, q, ln, prometheus.NewRegistry()) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		ch := testbroker.Raw(t)
		_, _ = ch.QueueDelete(q, false, false, false)
	}()

	qs := `{queue="` + q + `"}`
	cs := `{client="` + clientName + `"}`
	testbroker.Eventually(t, 20*time.Second, "messages confirmed", func() bool {
		return scrape(t, addr)["lavinmq_producer_messages_confirmed_total"+qs] > 50
	})
	px.Disable() // broker unreachable: the client loses the connection and fails to redial
	testbroker.Eventually(t, 10*time.Second, "disconnect", func() bool {
		s := scrape(t, addr)
		return s["lavinmq_client_connected"+cs] == 0 && s["lavinmq_client_reconnect_attempts_total"+cs] > 0
	})
	px.Enable()
	testbroker.Eventually(t, 20*time.Second, "reconnect and traffic", func() bool {
		s := scrape(t, addr)
		return s["lavinmq_client_reconnects_total"+cs] >= 1 && s["lavinmq_client_connected"+cs] == 1 &&
			s["lavinmq_consumer_resubscribes_total"+qs] >= 1
	})
	before := scrape(t, addr)["lavinmq_consumer_deliveries_total"+qs]
	testbroker.Eventually(t, 20*time.Second, "deliveries after the reconnect", func() bool {
		return scrape(t, addr)["lavinmq_consumer_deliveries_total"+qs] > before+20
	})

	s := scrape(t, addr)
	nonZero := []string{
		"lavinmq_client_connected" + cs,
		"lavinmq_client_reconnects_total" + cs,
		"lavinmq_client_reconnect_attempts_total" + cs,
		"lavinmq_client_disconnected_seconds_count" + cs,
		"lavinmq_producer_messages_accepted_total" + qs,
		"lavinmq_producer_messages_confirmed_total" + qs,
		"lavinmq_producer_buffer_capacity_messages" + qs,
		"lavinmq_producer_confirm_latency_seconds_count" + qs,
		"lavinmq_consumer_deliveries_total" + qs,
		"lavinmq_consumer_acks_total" + qs,
		`lavinmq_consumer_nacks_total{queue="` + q + `",reason="requeue"}`,
		"lavinmq_consumer_resubscribes_total" + qs,
		"lavinmq_consumer_handler_duration_seconds_count" + qs,
	}
	present := []string{
		"lavinmq_client_blocked" + cs,
		`lavinmq_client_disconnects_total{client="` + clientName + `",reason="notify"}`,
		"lavinmq_producer_messages_resent_total" + qs,
		"lavinmq_producer_buffered_messages" + qs,
		"lavinmq_producer_in_flight_messages" + qs,
		`lavinmq_producer_messages_dropped_total{queue="` + q + `",reason="evicted"}`,
		`lavinmq_producer_messages_dropped_total{queue="` + q + `",reason="shutdown"}`,
	}
	for _, name := range nonZero {
		if s[name] <= 0 {
			t.Errorf("%s = %v, want > 0", name, s[name])
		}
	}
	for _, name := range present {
		if _, ok := s[name]; !ok {
			t.Errorf("%s missing", name)
		}
	}
	for name := range s {
		if strings.Contains(name, "guest") || strings.Contains(name, "127.0.0.1") {
			t.Errorf("series %s carries a URL or credentials", name)
		}
	}
}
