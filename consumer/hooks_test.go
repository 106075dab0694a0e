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

// panickyHandleHook is a HookHandle that panics in every other OnHandle call
// and in every end it returns, counting the calls.
type panickyHandleHook struct{ calls, ends atomic.Int64 }

func (h *panickyHandleHook) OnHandle(ctx context.Context, _ consumer.HandleEvent) (context.Context, func(consumer.Action, any)) {
	if h.calls.Add(1)%2 == 0 {
		panic("handle hook")
	}
	return ctx, func(consumer.Action, any) { h.ends.Add(1); panic("handle hook end") }
}

// TestPanickingHooksAreRecovered: hooks that panic are recovered and logged;
// the handler still runs and every delivery is acked.
func TestPanickingHooksAreRecovered(t *testing.T) {
	q := rawQueue(t)
	c := newClient(t, testbroker.URL(t))
	h, hh := &panickyHook{}, &panickyHandleHook{}
	k, err := consumer.New(c, q, consumer.WithHooks(h, hh))
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
	if hh.calls.Load() != 20 || hh.ends.Load() != 10 {
		t.Fatalf("HookHandle: OnHandle %d, end %d, want 20 and 10 (no end after a panicking OnHandle)", hh.calls.Load(), hh.ends.Load())
	}
}
