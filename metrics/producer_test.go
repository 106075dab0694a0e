package metrics_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/c3ecadf2/lavinmq-go/buffer"
	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/metrics"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

// TestProducerSeriesFollowStats drives a producer whose client never
// connects: evictions, buffer depth, then shutdown drops, which stay counted
// after the producer is gone.
func TestProducerSeriesFollowStats(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := lavinmq.New("amqp://guest:guest@127.0.0.1:1/", lavinmq.WithHooks(m), lavinmq.WithReconnectDelay(time.Second, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := producer.New(c, "orders", producer.WithBufferSize(3), producer.WithHooks(m))
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := p.Publish(context.Background(), producer.Message{Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	q := map[string]string{"queue": "orders"}
	for name, want := range map[string]float64{
		"lavinmq_producer_messages_accepted_total":  5,
		"lavinmq_producer_messages_confirmed_total": 0,
		"lavinmq_producer_buffered_messages":        3,
		"lavinmq_producer_buffer_capacity_messages": 3,
		"lavinmq_producer_in_flight_messages":       0,
	} {
		if got := value(t, reg, name, q); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := value(t, reg, "lavinmq_producer_messages_dropped_total", map[string]string{"queue": "orders", "reason": "evicted"}); got != 2 {
		t.Errorf("dropped{evicted} = %v, want 2", got)
	}
	cl := map[string]string{"client": c.Name()}
	testbroker.Eventually(t, 10*time.Second, "a failed connection attempt counted", func() bool {
		return sample(reg, "lavinmq_client_reconnect_attempts_total", cl) >= 1
	})
	if got := value(t, reg, "lavinmq_client_connected", cl); got != 0 {
		t.Errorf("connected = %v for a client that never connected", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = p.Close(ctx)
	if got := value(t, reg, "lavinmq_producer_messages_dropped_total", map[string]string{"queue": "orders", "reason": "shutdown"}); got != 3 {
		t.Errorf("dropped{shutdown} after Close = %v, want 3", got)
	}
	if got := value(t, reg, "lavinmq_producer_messages_accepted_total", q); got != 5 {
		t.Errorf("accepted after Close = %v, want 5 (kept)", got)
	}
	if got := value(t, reg, "lavinmq_producer_buffered_messages", q); got != 0 {
		t.Errorf("buffered after Close = %v, want 0", got)
	}
	m.OnConfirmed("orders", 3*time.Millisecond)
	if got := value(t, reg, "lavinmq_producer_confirm_latency_seconds", q); got != 1 {
		t.Errorf("confirm latency samples = %v, want 1", got)
	}
}

func TestConsumerHooksFeedSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.OnDelivered("jobs")
	m.OnDelivered("jobs")
	m.OnDelivered("jobs")
	m.OnHandled("jobs", consumer.Ack, time.Millisecond)
	m.OnHandled("jobs", consumer.NackRequeue, time.Millisecond)
	m.OnHandled("jobs", consumer.NackDiscard, time.Millisecond)
	m.OnPanic("jobs", "boom")
	m.OnStaleAck("jobs")
	m.OnResubscribed("jobs")
	q := map[string]string{"queue": "jobs"}
	for name, want := range map[string]float64{
		"lavinmq_consumer_deliveries_total":         3,
		"lavinmq_consumer_acks_total":               1,
		"lavinmq_consumer_handler_panics_total":     1,
		"lavinmq_consumer_stale_acks_total":         1,
		"lavinmq_consumer_resubscribes_total":       1,
		"lavinmq_consumer_handler_duration_seconds": 3,
	} {
		if got := value(t, reg, name, q); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	for _, r := range []string{"requeue", "discard"} {
		if got := value(t, reg, "lavinmq_consumer_nacks_total", map[string]string{"queue": "jobs", "reason": r}); got != 1 {
			t.Errorf("nacks{%s} = %v, want 1", r, got)
		}
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
}

func TestConsumerDiscardAndSubscribeFailureMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.OnDiscarded("jobs", consumer.ReasonMaxRedeliveries)
	m.OnSubscribeFailed("jobs", errors.New("404"), 1)
	m.OnSubscribeFailed("jobs", errors.New("404"), 2)
	if got := value(t, reg, "lavinmq_consumer_discarded_total", map[string]string{"queue": "jobs", "reason": "max_redeliveries"}); got != 1 {
		t.Errorf("discarded{max_redeliveries} = %v, want 1", got)
	}
	if got := value(t, reg, "lavinmq_consumer_subscribe_failures_total", map[string]string{"queue": "jobs"}); got != 2 {
		t.Errorf("subscribe_failures = %v, want 2", got)
	}
}

// TestProducerByteSeriesFollowStats: the byte gauges show what the byte
// budget holds and its size, per queue, and fall to 0 when the producer
// closes (an offline client: everything stays buffered until then).
func TestProducerByteSeriesFollowStats(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := lavinmq.New("amqp://guest:guest@127.0.0.1:1/", lavinmq.WithReconnectDelay(time.Second, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := producer.New(c, "big", producer.WithBufferBytes(3000), producer.WithHooks(m), producer.WithPolicy(buffer.DropOldest))
	if err != nil {
		t.Fatal(err)
	}
	for range 4 { // the fourth evicts the first: 3 × 1000 bytes fit
		if err := p.Publish(context.Background(), producer.Message{Body: make([]byte, 1000)}); err != nil {
			t.Fatal(err)
		}
	}
	q := map[string]string{"queue": "big"}
	for name, want := range map[string]float64{
		"lavinmq_producer_buffered_bytes":        3000,
		"lavinmq_producer_in_flight_bytes":       0,
		"lavinmq_producer_buffer_capacity_bytes": 3000,
		"lavinmq_producer_buffered_messages":     3,
	} {
		if got := value(t, reg, name, q); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := value(t, reg, "lavinmq_producer_messages_dropped_total", map[string]string{"queue": "big", "reason": "evicted"}); got != 1 {
		t.Errorf("dropped{evicted} = %v, want 1", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = p.Close(ctx)
	if got := value(t, reg, "lavinmq_producer_buffered_bytes", q); got != 0 {
		t.Errorf("buffered_bytes after Close = %v, want 0", got)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
}
