package producer_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/c3ecadf2/lavinmq-go/buffer"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

// These tests need no broker: the client points at a closed port and never
// connects, so everything stays in the buffer.
const nowhere = "amqp://guest:guest@127.0.0.1:1/"

func offline(t *testing.T) *lavinmq.Client {
	return newClient(t, nowhere, lavinmq.WithReconnectDelay(time.Second, time.Second))
}

// closeNow closes an offline producer without waiting for a flush.
func closeNow(p *producer.Producer) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = p.Close(ctx)
}

func TestNewRejectsBadConfig(t *testing.T) {
	c := offline(t)
	cases := map[string]struct {
		c     *lavinmq.Client
		queue string
		opts  []producer.Option
	}{
		"nil client":       {nil, "q", nil},
		"empty queue":      {c, "", nil},
		"zero buffer":      {c, "q", []producer.Option{producer.WithBufferSize(0)}},
		"bad mode":         {c, "q", []producer.Option{producer.WithMode(7)}},
		"bad policy":       {c, "q", []producer.Option{producer.WithPolicy(buffer.Policy(42))}},
		"zero in-flight":   {c, "q", []producer.Option{producer.WithMaxInFlight(0)}},
		"zero max size":    {c, "q", []producer.Option{producer.WithMaxMessageSize(0)}},
		"zero budget":      {c, "q", []producer.Option{producer.WithRetryBudget(0)}},
		"bad reopen delay": {c, "q", []producer.Option{producer.WithReopenDelay(time.Second, time.Millisecond)}},
		"nil logger":       {c, "q", []producer.Option{producer.WithLogger(nil)}},
		"nil hook":         {c, "q", []producer.Option{producer.WithHooks(nil)}},
		"nil option":       {c, "q", []producer.Option{nil}},
		"declare no queue": {c, "", []producer.Option{producer.WithExchange("x", "k"), producer.WithDeclare(nil)}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p, err := producer.New(tc.c, tc.queue, tc.opts...)
			if !errors.Is(err, producer.ErrInvalidConfig) || p != nil {
				t.Fatalf("New = %v, %v; want ErrInvalidConfig", p, err)
			}
		})
	}
	// An exchange without a queue name is fine.
	p := newProducer(t, c, "", producer.WithExchange("amq.topic", "k"), producer.WithLogger(slog.New(slog.DiscardHandler)))
	if p == nil {
		t.Fatal("nil producer")
	}
}

func TestPublishRejectsBadMessages(t *testing.T) {
	p := newProducer(t, offline(t), "q", producer.WithMaxMessageSize(10))
	ctx := context.Background()
	if err := p.Publish(ctx, producer.Message{Body: make([]byte, 11)}); !errors.Is(err, producer.ErrTooLarge) {
		t.Fatalf("11 bytes over a 10-byte max: %v, want ErrTooLarge", err)
	}
	for _, m := range []producer.Message{{DeliveryMode: 3}, {Priority: 10}, {Expiration: "1s"}} {
		if err := p.Publish(ctx, m); !errors.Is(err, producer.ErrInvalidMessage) {
			t.Fatalf("Publish(%+v) = %v, want ErrInvalidMessage", m, err)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := p.Publish(cancelled, producer.Message{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Publish with a cancelled ctx = %v", err)
	}
	if s := p.Stats(); s.Accepted != 0 {
		t.Fatalf("rejected messages were counted as accepted: %+v", s)
	}
}

func TestDropOldestEvictsInOrderAndCloseReportsShutdown(t *testing.T) {
	drops := newDropLog()
	p, err := producer.New(offline(t), "q", producer.WithBufferSize(5), producer.OnDrop(drops.fn))
	if err != nil {
		t.Fatal(err)
	}
	for i := range uint64(12) {
		if err := p.Publish(context.Background(), producer.Message{Body: seqBody(i)}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	s := p.Stats()
	checkInvariant(t, s)
	if s.Accepted != 12 || s.DroppedBy[producer.Evicted] != 7 || s.Buffered != 5 || s.Pending != 5 {
		t.Fatalf("after 12 publishes into 5 slots: %+v", s)
	}
	for i, seq := range drops.seqs {
		if seq != uint64(i) {
			t.Fatalf("evicted %v, want the oldest first: 0..6", drops.seqs)
		}
	}
	if drops.queue != "q" {
		t.Fatalf("OnDrop got queue %q", drops.queue)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := p.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close with 5 undeliverable messages = %v, want a deadline error", err)
	}
	s = p.Stats()
	checkInvariant(t, s)
	if s.DroppedBy[producer.Shutdown] != 5 || drops.count(producer.Shutdown) != 5 || s.Pending != 0 {
		t.Fatalf("after Close: %+v, OnDrop shutdown calls %d", s, drops.count(producer.Shutdown))
	}
	if err := p.Publish(context.Background(), producer.Message{}); !errors.Is(err, producer.ErrClosed) {
		t.Fatalf("Publish after Close = %v, want ErrClosed", err)
	}
	if err2 := p.Close(context.Background()); !errors.Is(err2, context.DeadlineExceeded) {
		t.Fatalf("second Close = %v, want the first result", err2)
	}
}

func TestRaiseReturnsErrFull(t *testing.T) {
	p := newProducer(t, offline(t), "q", producer.WithBufferSize(3), producer.WithPolicy(buffer.Raise))
	defer closeNow(p)
	for i := range 3 {
		if err := p.Publish(context.Background(), producer.Message{}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	if err := p.Publish(context.Background(), producer.Message{}); !errors.Is(err, buffer.ErrFull) {
		t.Fatalf("publish into a full buffer with Raise = %v, want buffer.ErrFull", err)
	}
	if s := p.Stats(); s.Accepted != 3 || s.Dropped != 0 {
		t.Fatalf("stats: %+v", s)
	}
}

func TestBlockHonoursCtxAndClose(t *testing.T) {
	p, err := producer.New(offline(t), "q", producer.WithBufferSize(1), producer.WithPolicy(buffer.Block))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(context.Background(), producer.Message{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := p.Publish(ctx, producer.Message{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Block on a full buffer = %v, want DeadlineExceeded", err)
	}
	// A Publish waiting in Block is released by Close with ErrClosed.
	res := make(chan error, 1)
	go func() { res <- p.Publish(context.Background(), producer.Message{}) }()
	time.Sleep(50 * time.Millisecond)
	closeCtx, cancelClose := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelClose()
	_ = p.Close(closeCtx)
	if err := <-res; !errors.Is(err, producer.ErrClosed) {
		t.Fatalf("blocked Publish released by Close = %v, want ErrClosed", err)
	}
	if s := p.Stats(); s.Accepted != 1 || s.DroppedBy[producer.Shutdown] != 1 {
		t.Fatalf("stats: %+v", s)
	}
}

func TestClientCloseStopsProducer(t *testing.T) {
	c, err := lavinmq.New(nowhere)
	if err != nil {
		t.Fatal(err)
	}
	drops := newDropLog()
	p := newProducer(t, c, "q", producer.OnDrop(drops.fn))
	for range 3 {
		if err := p.Publish(context.Background(), producer.Message{}); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	flush(t, p, 5*time.Second) // settles: everything is reported
	if drops.count(producer.Shutdown) != 3 {
		t.Fatalf("after the client closed: %d shutdown drops, want 3", drops.count(producer.Shutdown))
	}
	if err := p.Publish(context.Background(), producer.Message{}); !errors.Is(err, producer.ErrClosed) {
		t.Fatalf("Publish after the client closed = %v, want ErrClosed", err)
	}
}

func TestDropReasonNames(t *testing.T) {
	want := []string{"evicted", "nacked", "unroutable", "too_large", "shutdown", "invalid"}
	if n := len(producer.DropReasons()); n != len(want) {
		t.Fatalf("%d reasons, want %d", n, len(want))
	}
	for i, r := range producer.DropReasons() {
		if r.String() != want[i] {
			t.Fatalf("%d: %q, want %q", i, r, want[i])
		}
	}
}

// TestGeneratedIDsAreFixedAtAccept: a message without an ID gets
// "<prefix>-<n>" in accept order, and OnDrop sees it even for a message
// that was never sent.
func TestGeneratedIDsAreFixedAtAccept(t *testing.T) {
	var ids []string
	p, err := producer.New(offline(t), "q", producer.WithBufferSize(1),
		producer.OnDrop(func(m producer.Message, _ string, _ producer.DropReason) { ids = append(ids, m.MessageID) }))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := p.Publish(context.Background(), producer.Message{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Publish(context.Background(), producer.Message{MessageID: "mine"}); err != nil {
		t.Fatal(err)
	}
	closeNow(p)
	if len(ids) != 3 || !strings.HasSuffix(ids[0], "-1") || !strings.HasSuffix(ids[1], "-2") || ids[2] != "mine" {
		t.Fatalf("dropped IDs %q: want <prefix>-1, <prefix>-2 (evicted in order), then the caller's own", ids)
	}
	if prefix := strings.TrimSuffix(ids[0], "1"); !strings.HasPrefix(ids[1], prefix) || len(prefix) < 8 {
		t.Fatalf("IDs %q do not share one producer prefix", ids)
	}
}
