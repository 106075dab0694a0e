package producer_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

// TestNilContextIsAnError: Publish, Flush and Close refuse a nil ctx with an
// error instead of panicking.
func TestNilContextIsAnError(t *testing.T) {
	p := newProducer(t, offline(t), "q")
	calls := map[string]func() error{
		"Publish": func() error { return p.Publish(nil, producer.Message{}) }, //nolint:staticcheck
		"Flush":   func() error { return p.Flush(nil) },                       //nolint:staticcheck
		"Close":   func() error { return p.Close(nil) },                       //nolint:staticcheck
	}
	for name, f := range calls {
		if err := f(); !errors.Is(err, producer.ErrInvalidArgument) {
			t.Fatalf("%s(nil) = %v, want ErrInvalidArgument", name, err)
		}
	}
	if err := p.Publish(context.Background(), producer.Message{}); err != nil {
		t.Fatalf("after Close(nil) the producer must still be open: %v", err)
	}
	closeNow(p)
}

type notAHook struct{}

func (notAHook) OnConfirm(string, time.Duration) {} // misspelt: OnConfirmed

// TestHooksMustImplementAnInterface: a value that implements no hook
// interface (a misspelt method) is refused by New.
func TestHooksMustImplementAnInterface(t *testing.T) {
	_, err := producer.New(offline(t), "q", producer.WithHooks(notAHook{}))
	if !errors.Is(err, producer.ErrInvalidConfig) || !strings.Contains(err.Error(), "notAHook") {
		t.Fatalf("New with a non-hook = %v, want ErrInvalidConfig naming the type", err)
	}
}

func TestNewRejectsLongNamesAndBadDeclareArgs(t *testing.T) {
	c := offline(t)
	long := strings.Repeat("n", 256)
	cases := map[string]struct {
		queue string
		opts  []producer.Option
	}{
		"queue 256":         {long, nil},
		"exchange 256":      {"", []producer.Option{producer.WithExchange(long, "k")}},
		"routing key 256":   {"", []producer.Option{producer.WithExchange("x", long)}},
		"declare args uint": {"q", []producer.Option{producer.WithDeclare(amqp.Table{"x-max-length": uint(5)})}},
		"declare args key":  {"q", []producer.Option{producer.WithDeclare(amqp.Table{long: 1})}},
	}
	for name, tc := range cases {
		p, err := producer.New(c, tc.queue, tc.opts...)
		if !errors.Is(err, producer.ErrInvalidConfig) || p != nil {
			t.Fatalf("%s: New = %v, %v; want ErrInvalidConfig", name, p, err)
		}
		t.Logf("%s: %v", name, err)
	}
}

// panicky panics in every hook it implements, and counts the calls.
type panicky struct{ confirmed, dropped, opened, closed atomic.Int64 }

func (h *panicky) OnConfirmed(string, time.Duration)     { h.confirmed.Add(1); panic("confirmed hook") }
func (h *panicky) OnDropped(string, producer.DropReason) { h.dropped.Add(1); panic("dropped hook") }
func (h *panicky) OnProducerOpened(*producer.Producer)   { h.opened.Add(1); panic("opened hook") }
func (h *panicky) OnProducerClosed(*producer.Producer, producer.Stats) {
	h.closed.Add(1)
	panic("closed hook")
}

// TestPanickingHooksAreRecovered: hooks and OnDrop that panic are recovered
// and logged; the publisher goes on confirming and dropping.
func TestPanickingHooksAreRecovered(t *testing.T) {
	c := newClient(t, testbroker.URL(t))
	q := declare(t, nil)
	h := &panicky{}
	var logs testbroker.LogBuffer
	var onDrop atomic.Int64
	p, err := producer.New(c, q, producer.WithHooks(h), producer.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))),
		producer.WithBufferSize(10), producer.OnDrop(func(producer.Message, string, producer.DropReason) { onDrop.Add(1); panic("OnDrop") }))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const n = 100
	for i := range uint64(n) {
		if err := p.Publish(ctx, producer.Message{Body: seqBody(i)}); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, p, 20*time.Second)
	s := p.Stats()
	checkInvariant(t, s)
	if s.Confirmed+s.Dropped != n || h.confirmed.Load() != int64(s.Confirmed) || h.dropped.Load() != int64(s.Dropped) || onDrop.Load() != int64(s.Dropped) {
		t.Fatalf("stats %+v, hook calls confirmed %d dropped %d OnDrop %d", s, h.confirmed.Load(), h.dropped.Load(), onDrop.Load())
	}
	if err := p.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if h.opened.Load() != 1 || h.closed.Load() != 1 {
		t.Fatalf("opened %d closed %d, want 1 each", h.opened.Load(), h.closed.Load())
	}
	if out := logs.String(); !strings.Contains(out, "hook panicked") || !strings.Contains(out, "confirmed hook") {
		t.Fatalf("the panics were not logged:\n%.2000s", out)
	}
}

// TestCloseReportsShutdownDropsAfterClientClose: when the client is closed
// first, the producer's own Close still says that it dropped messages.
func TestCloseReportsShutdownDropsAfterClientClose(t *testing.T) {
	c, err := lavinmq.New(nowhere)
	if err != nil {
		t.Fatal(err)
	}
	p, err := producer.New(c, "q")
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := p.Publish(context.Background(), producer.Message{}); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = p.Close(ctx)
	if !errors.Is(err, producer.ErrDropped) || !strings.Contains(err.Error(), "3 with reason shutdown") {
		t.Fatalf("Close after the client closed = %v, want ErrDropped for 3 messages", err)
	}
	// And nil when nothing had to be dropped at shutdown, even though
	// messages were dropped for another reason earlier.
	p2 := newProducer(t, offline(t), "q2", producer.WithBufferSize(1))
	for range 3 {
		if err := p2.Publish(context.Background(), producer.Message{}); err != nil { // two evicted
			t.Fatal(err)
		}
	}
	drained, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if err := p2.Close(drained); !errors.Is(err, producer.ErrDropped) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Close with a cancelled ctx and one buffered message = %v, want ErrDropped wrapping Canceled", err)
	}
	if s := p2.Stats(); s.DroppedBy[producer.Evicted] != 2 || s.DroppedBy[producer.Shutdown] != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// TestCloseIsNilAfterOtherDrops: Close returns nil when every message
// settled, even if some were dropped for a reason other than shutdown.
func TestCloseIsNilAfterOtherDrops(t *testing.T) {
	c := newClient(t, testbroker.URL(t))
	drops := newDropLog()
	p, err := producer.New(c, testbroker.Name(t, "missing"), producer.OnDrop(drops.fn))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(context.Background(), producer.Message{Body: seqBody(1)}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatalf("Close after an unroutable drop = %v, want nil", err)
	}
	if drops.count(producer.Unroutable) != 1 {
		t.Fatalf("unroutable drops %d, want 1", drops.count(producer.Unroutable))
	}
}
