package metrics_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/metrics"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

// TestFireAndForgetFeedsWrittenNotConfirmLatency: one Metrics value, a
// FireAndForget producer and a Confirm producer publish n each. Socket
// writes count as written (and, as Stats does, as confirmed) but never reach
// the confirm-latency histogram; broker acks do.
func TestFireAndForgetFeedsWrittenNotConfirmLatency(t *testing.T) {
	const n = 300
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := lavinmq.New(testbroker.URL(t), lavinmq.WithHooks(m))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ff, cf := testbroker.Name(t, "ff"), testbroker.Name(t, "confirm")
	defer func() {
		raw := testbroker.Raw(t)
		_, _ = raw.QueueDelete(ff, false, false, false)
		_, _ = raw.QueueDelete(cf, false, false, false)
	}()
	for _, tc := range []struct {
		queue string
		mode  producer.Mode
	}{{ff, producer.FireAndForget}, {cf, producer.Confirm}} {
		p, err := producer.New(c, tc.queue, producer.WithMode(tc.mode), producer.WithDeclare(nil), producer.WithHooks(m))
		if err != nil {
			t.Fatal(err)
		}
		for range n {
			if err := p.Publish(ctx, producer.Message{Body: []byte("x")}); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if tc.mode == producer.Confirm { // one closed, one live: both must read right
			if err := p.Close(ctx); err != nil {
				t.Fatal(err)
			}
		} else {
			defer p.Close(ctx)
		}
	}
	for _, tc := range []struct {
		queue                       string
		latency, written, confirmed float64
	}{
		{ff, 0, n, n},
		{cf, n, 0, n},
	} {
		q := map[string]string{"queue": tc.queue}
		lat := value(t, reg, "lavinmq_producer_confirm_latency_seconds", q)
		written := value(t, reg, "lavinmq_producer_messages_written_total", q)
		confirmed := value(t, reg, "lavinmq_producer_messages_confirmed_total", q)
		accepted := value(t, reg, "lavinmq_producer_messages_accepted_total", q)
		dropped := 0.0
		for _, r := range producer.DropReasons() {
			dropped += value(t, reg, "lavinmq_producer_messages_dropped_total", map[string]string{"queue": tc.queue, "reason": r.String()})
		}
		pending := value(t, reg, "lavinmq_producer_buffered_messages", q) + value(t, reg, "lavinmq_producer_in_flight_messages", q)
		t.Logf("queue %s: confirm latency samples %v, written %v, confirmed %v, accepted %v = confirmed + dropped %v + pending %v",
			tc.queue, lat, written, confirmed, accepted, dropped, pending)
		if lat != tc.latency || written != tc.written || confirmed != tc.confirmed {
			t.Errorf("queue %s: latency samples %v, written %v, confirmed %v; want %v, %v, %v",
				tc.queue, lat, written, confirmed, tc.latency, tc.written, tc.confirmed)
		}
		if accepted != confirmed+dropped+pending {
			t.Errorf("queue %s: accepted %v != confirmed %v + dropped %v + pending %v", tc.queue, accepted, confirmed, dropped, pending)
		}
	}
	checkLabels(t, reg)
	lintClean(t, reg)
}

func TestWrittenHookCountsWithoutLatency(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		m.OnWritten("logs")
	}
	m.OnConfirmed("orders", time.Millisecond)
	for _, tc := range []struct {
		name, queue string
		want        float64
	}{
		{"lavinmq_producer_messages_written_total", "logs", 3},
		{"lavinmq_producer_confirm_latency_seconds", "logs", 0},
		{"lavinmq_producer_messages_written_total", "orders", 0},
		{"lavinmq_producer_confirm_latency_seconds", "orders", 1},
	} {
		if got := value(t, reg, tc.name, map[string]string{"queue": tc.queue}); got != tc.want {
			t.Errorf("%s{queue=%s} = %v, want %v", tc.name, tc.queue, got, tc.want)
		}
	}
	lintClean(t, reg)
}

// TestQueueNamesThatAreNotUTF8BreakNeitherHooksNorScrape: AMQP allows any
// bytes in a queue name; a Prometheus label value must be UTF-8. The hooks
// must not panic (they run on the SDK's goroutines) and the scrape must work.
func TestQueueNamesThatAreNotUTF8BreakNeitherHooksNorScrape(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	const bad, shown = "bad\xff", "bad\uFFFD"
	c, err := lavinmq.New("amqp://guest:guest@127.0.0.1:1/", lavinmq.WithReconnectDelay(time.Second, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := producer.New(c, bad, producer.WithHooks(m))
	accepted := 1.0
	switch {
	case errors.Is(err, producer.ErrInvalidConfig): // refused at New: no producer series then
		p, accepted = nil, -1
	case err != nil:
		t.Fatal(err)
	default:
		if err := p.Publish(context.Background(), producer.Message{Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	m.OnConfirmed(bad, time.Millisecond)
	m.OnWritten(bad)
	m.OnDelivered(bad)
	m.OnHandled(bad, consumer.NackDiscard, time.Millisecond)
	m.OnPanic(bad, "boom")
	m.OnStaleAck(bad)
	m.OnResubscribed(bad)
	if _, err := reg.Gather(); err != nil {
		t.Fatalf("scrape failed: %v", err)
	}
	q := map[string]string{"queue": shown}
	if got := sample(reg, "lavinmq_producer_messages_accepted_total", q); got != accepted {
		t.Errorf("accepted{queue=%q} = %v, want %v (-1: no series)", shown, got, accepted)
	}
	for name, want := range map[string]float64{
		"lavinmq_producer_confirm_latency_seconds": 1,
		"lavinmq_producer_messages_written_total":  1,
		"lavinmq_consumer_deliveries_total":        1,
		"lavinmq_consumer_handler_panics_total":    1,
	} {
		if got := value(t, reg, name, q); got != want {
			t.Errorf("%s{queue=%q} = %v, want %v", name, shown, got, want)
		}
	}
	if p == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = p.Close(ctx)
	if _, err := reg.Gather(); err != nil {
		t.Fatalf("scrape after Close failed: %v", err)
	}
}
