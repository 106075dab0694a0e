package consumer_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
)

type ctxKey struct{}

// wrapHook is a HookHandle that puts the delivery's body in the handler's
// ctx and records how each call ended.
type wrapHook struct {
	mu   sync.Mutex
	evs  []consumer.HandleEvent
	ends []string
	recs []any
}

func (h *wrapHook) OnHandle(ctx context.Context, ev consumer.HandleEvent) (context.Context, func(consumer.Action, any)) {
	h.mu.Lock()
	h.evs = append(h.evs, ev)
	h.mu.Unlock()
	body := string(ev.Delivery.Body)
	return context.WithValue(ctx, ctxKey{}, body), func(a consumer.Action, rec any) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.ends = append(h.ends, body+":"+a.String())
		h.recs = append(h.recs, rec)
	}
}

// TestHookHandleWrapsTheHandler: the handler gets the ctx OnHandle returned,
// and end is called once per call with the Action applied and, for a panic,
// the value the handler panicked with.
func TestHookHandleWrapsTheHandler(t *testing.T) {
	q := rawQueue(t)
	c := newClient(t, testbroker.URL(t))
	h := &wrapHook{}
	k, err := consumer.New(c, q, consumer.WithHooks(h), consumer.WithRequeueOnPanic(false))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]string{}
	stop := run(t, k, func(ctx context.Context, d consumer.Delivery) consumer.Action {
		v, _ := ctx.Value(ctxKey{}).(string)
		mu.Lock()
		seen[string(d.Body)] = v
		mu.Unlock()
		switch string(d.Body) {
		case "boom":
			panic("handler boom")
		case "drop":
			return consumer.NackDiscard
		}
		return consumer.Ack
	})
	publish(t, q, "ok", "drop", "boom")
	testbroker.Eventually(t, 10*time.Second, "three calls ended", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.ends) == 3
	})
	if err := stop(); err != nil && err != context.Canceled {
		t.Fatalf("Run: %v", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	t.Logf("ends %v, recovered %v", h.ends, h.recs)
	want := []string{"ok:ack", "drop:nack_discard", "boom:nack_discard"}
	for i, w := range want {
		if h.ends[i] != w {
			t.Fatalf("ends %v, want %v", h.ends, want)
		}
	}
	if h.recs[0] != nil || h.recs[1] != nil || h.recs[2] != "handler boom" {
		t.Fatalf("recovered values %v, want nil, nil, handler boom", h.recs)
	}
	for b, v := range seen {
		if v != b {
			t.Fatalf("handler of %q got ctx value %q: not the ctx OnHandle returned", b, v)
		}
	}
	ev := h.evs[0]
	if ev.Client != c.Name() || ev.Endpoint != testbroker.HostPort(t) || ev.Delivery.Queue != q || ev.Delivery.DeliveryTag == 0 {
		t.Fatalf("event %+v", ev)
	}
}
