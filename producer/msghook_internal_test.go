package producer

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/buffer"
	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
)

// msgRecorder is a HookMessage that adds a header and records every call
// by handle.
type msgRecorder struct {
	mu       sync.Mutex
	n        int
	events   map[int][]string
	settled  map[int]MessageSettledEvent
	publish  []MessagePublishEvent
	addValue string // the value of the header it adds
}

func newMsgRecorder() *msgRecorder {
	return &msgRecorder{events: map[int][]string{}, settled: map[int]MessageSettledEvent{}, addValue: "00-trace"}
}

func (r *msgRecorder) OnMessagePublish(_ context.Context, ev MessagePublishEvent, m *Message) any {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	r.publish = append(r.publish, ev)
	h := make(amqp.Table, len(m.Headers)+1)
	for k, v := range m.Headers {
		h[k] = v
	}
	h["traceparent"] = r.addValue
	m.Headers = h
	return r.n
}

func (r *msgRecorder) add(handle any, e string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events[handle.(int)] = append(r.events[handle.(int)], e)
}

func (r *msgRecorder) OnMessageHeadersRefused(h any, err error) { r.add(h, "refused") }
func (r *msgRecorder) OnMessageSent(h any, ev MessageSentEvent) { r.add(h, "sent") }
func (r *msgRecorder) OnMessageNacked(h any, attempt int)       { r.add(h, "nacked") }
func (r *msgRecorder) OnMessageSettled(h any, ev MessageSettledEvent) {
	r.add(h, "settled")
	r.mu.Lock()
	defer r.mu.Unlock()
	r.settled[h.(int)] = ev
}

// TestHookMessageFollowsEachMessage: without a connection, with a buffer of
// one under DropOldest, each message gets its own handle; the evicted one
// settles with reason Evicted and a DropError, the one left with Shutdown at
// Close, each exactly once; the headers the hook set are in the buffered
// message and the caller's map is untouched.
func TestHookMessageFollowsEachMessage(t *testing.T) {
	rec := newMsgRecorder()
	p := offlineProducer(t, 1, WithHooks(rec), WithPolicy(buffer.DropOldest))
	ctx := context.Background()
	user := amqp.Table{"tenant": "acme"}
	for range 2 {
		if err := p.Publish(ctx, Message{Body: []byte("x"), Headers: user}); err != nil {
			t.Fatal(err)
		}
	}
	if len(user) != 1 {
		t.Fatalf("the caller's headers were written: %v", user)
	}
	env, ok := p.ring.TryPop()
	if !ok || env.msg.Headers["traceparent"] != "00-trace" || env.msg.Headers["tenant"] != "acme" || env.trace != 2 {
		t.Fatalf("buffered message: headers %v, handle %v", env.msg.Headers, env.trace)
	}
	if !p.ring.TryPush(env) {
		t.Fatal("push back")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_ = p.Close(cctx)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	t.Logf("events %v, settled %+v, publish events %+v", rec.events, rec.settled, rec.publish)
	if rec.settled[1].Reason != Evicted || rec.settled[2].Reason != Shutdown || !rec.settled[1].Accepted {
		t.Fatalf("settled %+v, want 1 evicted and 2 shutdown", rec.settled)
	}
	var de *DropError
	if !errors.As(rec.settled[1].Err, &de) || de.MessageID == "" || de.RoutingKey != "bench" {
		t.Fatalf("settle error %v, want a DropError with the ID and key", rec.settled[1].Err)
	}
	for h := 1; h <= 2; h++ {
		if got := strings.Join(rec.events[h], ","); got != "settled" {
			t.Fatalf("message %d: events %s, want one settle", h, got)
		}
	}
	ev := rec.publish[0]
	if ev.Queue != "bench" || ev.RoutingKey != "bench" || ev.MessageID == "" || ev.Endpoint != "127.0.0.1:1" || ev.Mode != Confirm {
		t.Fatalf("publish event %+v", ev)
	}
}

// TestHookMessageNotAccepted: a message Publish refuses after the hook ran
// (Raise on a full buffer) settles at once as not accepted.
func TestHookMessageNotAccepted(t *testing.T) {
	rec := newMsgRecorder()
	p := offlineProducer(t, 1, WithHooks(rec), WithPolicy(buffer.Raise))
	ctx := context.Background()
	_ = p.Publish(ctx, Message{Body: []byte("a")})
	if err := p.Publish(ctx, Message{Body: []byte("b")}); !errors.Is(err, buffer.ErrFull) {
		t.Fatalf("Publish on a full buffer: %v", err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if ev, ok := rec.settled[2]; !ok || ev.Accepted || !errors.Is(ev.Err, buffer.ErrFull) {
		t.Fatalf("refused message settled %+v (%v), want not accepted with ErrFull", ev, ok)
	}
}

// TestHookHeadersThatDoNotFitAreTakenBack: a message whose properties leave
// no room for the hook's header is buffered with the caller's headers,
// OnMessageHeadersRefused is called, and the producer logs it once.
func TestHookHeadersThatDoNotFitAreTakenBack(t *testing.T) {
	rec := newMsgRecorder()
	logs := &testbroker.LogBuffer{}
	p := offlineProducer(t, 8, WithHooks(rec), WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	// 9 bytes of short-string lengths + the table: 4 + 1+3 ("big") + 5 + n.
	n := maxPropertiesSize - 9 - 4 - 4 - 5
	big := amqp.Table{"big": strings.Repeat("x", n)}
	ctx := context.Background()
	for range 3 {
		if err := p.Publish(ctx, Message{Body: []byte("x"), Headers: big}); err != nil {
			t.Fatalf("a message that fits without the hook's header is refused: %v", err)
		}
	}
	if err := p.Publish(ctx, Message{Body: []byte("x"), Headers: amqp.Table{"small": "1"}}); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		env, ok := p.ring.TryPop()
		if !ok {
			t.Fatalf("message %d not buffered", i)
		}
		_, has := env.msg.Headers["traceparent"]
		if has != (i == 3) {
			t.Fatalf("message %d: trace header present %v, headers of %d keys", i, has, len(env.msg.Headers))
		}
	}
	rec.mu.Lock()
	refused := 0
	for _, evs := range rec.events {
		for _, e := range evs {
			if e == "refused" {
				refused++
			}
		}
	}
	rec.mu.Unlock()
	if refused != 3 {
		t.Fatalf("OnMessageHeadersRefused called %d times, want 3", refused)
	}
	if got := strings.Count(logs.String(), "no room for the headers"); got != 1 {
		t.Fatalf("logged %d times, want once:\n%s", got, logs.String())
	}
}

type confirmCounter struct{}

func (confirmCounter) OnConfirmed(string, time.Duration) {}

// TestPublishDoesNotAllocateWithoutHookMessage: hooks of other kinds leave
// Publish at 0 allocations; only a HookMessage costs (its own work).
func TestPublishDoesNotAllocateWithoutHookMessage(t *testing.T) {
	p := offlineProducer(t, 8192, WithHooks(confirmCounter{}))
	ctx := context.Background()
	m := Message{Body: make([]byte, 16)}
	if n := testing.AllocsPerRun(1000, func() { _ = p.Publish(ctx, m) }); n != 0 {
		t.Fatalf("Publish with a HookConfirmed allocates %.1f times per call, want 0", n)
	}
	q := offlineProducer(t, 8192, WithHooks(newMsgRecorder()))
	n := testing.AllocsPerRun(1000, func() { _ = q.Publish(ctx, m) })
	t.Logf("Publish with a HookMessage that copies the headers: %.1f allocations per call", n)
}
