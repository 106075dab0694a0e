package consumer_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
)

// panickyHook panics in every hook it implements, and counts the calls.
type panickyHook struct{ delivered, handled atomic.Int64 }

func (h *panickyHook) OnDelivered(string) { h.delivered.Add(1); panic("delivered hook") }
func (h *panickyHook) OnHandled(string, consumer.Action, time.Duration) {
	h.handled.Add(1)
	panic("handled hook")
}

// TestPanickingHooksAreRecovered: hooks that panic are recovered and logged;
// the handler still runs and every delivery is acked.
func TestPanickingHooksAreRecovered(t *testing.T) {
	q := rawQueue(t)
	c := newClient(t, testbroker.URL(t))
	h := &panickyHook{}
	k, err := consumer.New(c, q, consumer.WithHooks(h))
	if err != nil {
		t.Fatal(err)
	}
	var got received
	stop := run(t, k, func(_ context.Context, d consumer.Delivery) consumer.Action { got.add(d); return consumer.Ack })
	want := bodies("m", 20)
	publish(t, q, want...)
	testbroker.Eventually(t, 10*time.Second, "every message handled", func() bool { return got.has(want...) })
	testbroker.Eventually(t, 5*time.Second, "every ack applied", func() bool { return k.Stats().Acked == 20 })
	if err := stop(); err != nil && err != context.Canceled {
		t.Fatalf("Run: %v", err)
	}
	if h.delivered.Load() != 20 || h.handled.Load() != 20 {
		t.Fatalf("hook calls delivered %d handled %d, want 20 each", h.delivered.Load(), h.handled.Load())
	}
}
