package producer_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/buffer"
	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

// disconnects counts lost connections of a client and keeps the last cause.
type disconnects struct {
	n    atomic.Int64
	last atomic.Value // string
}

func (d *disconnects) OnDisconnected(ev lavinmq.DisconnectedEvent) {
	d.last.Store(fmt.Sprint(ev.Err))
	d.n.Add(1)
}

type poisonCase struct {
	name string
	mod  func(m *producer.Message)
}

func long(n int) string { return strings.Repeat("x", n) }

type unencodable struct{ A int }

func poisonCases() []poisonCase {
	s256 := long(256)
	return []poisonCase{
		{"message id 256", func(m *producer.Message) { m.MessageID = s256 }},
		{"correlation id 256", func(m *producer.Message) { m.CorrelationID = s256 }},
		{"reply to 256", func(m *producer.Message) { m.ReplyTo = s256 }},
		{"content type 256", func(m *producer.Message) { m.ContentType = s256 }},
		{"content encoding 256", func(m *producer.Message) { m.ContentEncoding = s256 }},
		{"type 256", func(m *producer.Message) { m.Type = s256 }},
		{"app id 256", func(m *producer.Message) { m.AppID = s256 }},
		{"expiration 256", func(m *producer.Message) { m.Expiration = strings.Repeat("1", 256) }},
		{"header key 256", func(m *producer.Message) { m.Headers = amqp.Table{s256: "v"} }},
		{"header uint", func(m *producer.Message) { m.Headers = amqp.Table{"k": uint(1)} }},
		{"header uint64", func(m *producer.Message) { m.Headers = amqp.Table{"k": uint64(1)} }},
		{"header int over int32", func(m *producer.Message) { m.Headers = amqp.Table{"k": int(1) << 40} }},
		{"header []string", func(m *producer.Message) { m.Headers = amqp.Table{"k": []string{"a"}} }},
		{"header struct", func(m *producer.Message) { m.Headers = amqp.Table{"k": unencodable{1}} }},
		{"header map[string]any", func(m *producer.Message) { m.Headers = amqp.Table{"k": map[string]any{"a": 1}} }},
		{"nested table bad value", func(m *producer.Message) { m.Headers = amqp.Table{"k": amqp.Table{"n": uint(1)}} }},
		{"nested table long key", func(m *producer.Message) { m.Headers = amqp.Table{"k": amqp.Table{s256: 1}} }},
		{"array bad value", func(m *producer.Message) { m.Headers = amqp.Table{"k": []any{"ok", struct{}{}}} }},
		{"array of table long key", func(m *producer.Message) { m.Headers = amqp.Table{"k": []any{amqp.Table{s256: 1}}} }},
		{"headers over frame size", func(m *producer.Message) { m.Headers = amqp.Table{"k": long(200_000)} }},
	}
}

// TestPoisonMessagesAreRefused: every message amqp091-go cannot encode is
// refused by Publish with ErrInvalidMessage naming the field; the good
// messages around it are confirmed exactly once, and the connection never drops.
func TestPoisonMessagesAreRefused(t *testing.T) {
	dc := &disconnects{}
	c := newClient(t, testbroker.URL(t), lavinmq.WithHooks(dc))
	q := declare(t, nil)
	p := newProducer(t, c, q)
	ctx := context.Background()
	var seq uint64
	for _, tc := range poisonCases() {
		if err := p.Publish(ctx, producer.Message{Body: seqBody(seq)}); err != nil {
			t.Fatalf("%s: good message before: %v", tc.name, err)
		}
		seq++
		m := producer.Message{Body: seqBody(1 << 40)}
		tc.mod(&m)
		err := p.Publish(ctx, m)
		if !errors.Is(err, producer.ErrInvalidMessage) {
			t.Fatalf("%s: Publish = %v, want ErrInvalidMessage", tc.name, err)
		}
		t.Logf("%s: %v", tc.name, err)
		if err := p.Publish(ctx, producer.Message{Body: seqBody(seq)}); err != nil {
			t.Fatalf("%s: good message after: %v", tc.name, err)
		}
		seq++
	}
	flush(t, p, 20*time.Second)
	s := p.Stats()
	checkInvariant(t, s)
	if s.Confirmed != seq || s.Dropped != 0 || s.Resent != 0 {
		t.Fatalf("want %d confirmed, 0 dropped, 0 resent: %+v", seq, s)
	}
	if n := dc.n.Load(); n != 0 {
		t.Fatalf("the client lost its connection %d times", n)
	}
	r := consumeAll(t, q, int(seq), 300*time.Millisecond, 20*time.Second)
	if len(r.count) != int(seq) || r.duplicates() != 0 {
		t.Fatalf("received %d distinct with %d duplicates, want %d exactly once", len(r.count), r.duplicates(), seq)
	}
}

// TestPoisonBudgetDropsChannelKiller: a message that validation cannot
// catch (a user-id that is not the connection's user: RabbitMQ closes the
// channel with 406 PRECONDITION_FAILED) is re-sent first after every channel
// loss; after DefaultPoisonBudget such losses in a row it is dropped with
// reason Invalid, and the messages behind it go through, exactly once.
func TestPoisonBudgetDropsChannelKiller(t *testing.T) {
	dc := &disconnects{}
	c := newClient(t, testbroker.URL(t), lavinmq.WithHooks(dc))
	q := declare(t, nil)
	drops := newDropLog()
	p := newProducer(t, c, q, producer.OnDrop(drops.fn), producer.WithReopenDelay(10*time.Millisecond, 50*time.Millisecond))
	ctx := context.Background()
	const poison = 1 << 40
	if err := p.Publish(ctx, producer.Message{Body: seqBody(0)}); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(ctx, producer.Message{Body: seqBody(poison), UserID: "not-the-connection-user"}); err != nil {
		t.Fatal(err)
	}
	const behind = 50
	for i := uint64(1); i <= behind; i++ {
		if err := p.Publish(ctx, producer.Message{Body: seqBody(i)}); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, p, 30*time.Second)
	s := p.Stats()
	checkInvariant(t, s)
	t.Logf("stats after the poison: %+v", s)
	if s.Confirmed != behind+1 || s.Dropped != 1 || s.DroppedBy[producer.Invalid] != 1 || drops.count(producer.Invalid) != 1 {
		t.Fatalf("want %d confirmed and the poison dropped as invalid: %+v", behind+1, s)
	}
	drops.mu.Lock()
	got := drops.seqs
	drops.mu.Unlock()
	if len(got) != 1 || got[0] != poison {
		t.Fatalf("dropped %v, want only the poison message", got)
	}
	if n := dc.n.Load(); n != 0 {
		t.Fatalf("a channel-level poison cost %d connections", n)
	}
	r := consumeAll(t, q, behind+1, 300*time.Millisecond, 20*time.Second)
	if len(r.count) != behind+1 || r.count[poison] != 0 {
		t.Fatalf("received %d distinct (poison %d times), want %d without the poison", len(r.count), r.count[poison], behind+1)
	}
}

// TestFlushWaitsForEveryEarlierMessage: Flush must not count settlements,
// it must wait for each message accepted before it. The first message is
// nacked (the queue is full and rejects publishes) and waits in the
// producer's retry set while later messages settle (evicted from a buffer of
// one): Flush must still wait for the nacked one, and returns once it is
// re-sent and acked after room is made.
func TestFlushWaitsForEveryEarlierMessage(t *testing.T) {
	c := newClient(t, testbroker.URL(t))
	q := declare(t, amqp.Table{"x-max-length": int32(1), "x-overflow": "reject-publish"})
	raw := testbroker.Raw(t)
	if err := raw.PublishWithContext(context.Background(), "", q, false, false, amqp.Publishing{Body: []byte("filler")}); err != nil {
		t.Fatal(err)
	}
	testbroker.Eventually(t, 5*time.Second, "the filler in the queue", func() bool { return testbroker.QueueLen(t, q) == 1 })
	drops := newDropLog()
	p := newProducer(t, c, q, producer.OnDrop(drops.fn), producer.WithBufferSize(1), producer.WithPolicy(buffer.DropOldest),
		producer.WithRetryBudget(1000), producer.WithReopenDelay(300*time.Millisecond, 600*time.Millisecond))
	ctx := context.Background()
	if err := p.Publish(ctx, producer.Message{Body: seqBody(0)}); err != nil {
		t.Fatal(err)
	}
	testbroker.Eventually(t, 10*time.Second, "the first message nacked", func() bool {
		s := p.Stats()
		return s.Buffered == 0 && s.InFlight == 1
	})
	time.Sleep(100 * time.Millisecond) // its nack arrives; the publisher pauses before re-sending it
	flushed := make(chan error, 1)
	go func() {
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		flushed <- p.Flush(fctx)
	}()
	time.Sleep(20 * time.Millisecond)
	// Two later messages: the second evicts the first from the buffer of
	// one, so one message settles (dropped) while message 0 is unsettled.
	for i := uint64(1); i <= 2; i++ {
		if err := p.Publish(ctx, producer.Message{Body: seqBody(i)}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-flushed:
		t.Fatalf("Flush returned %v while the nacked first message was unsettled (stats %+v)", err, p.Stats())
	case <-time.After(1500 * time.Millisecond):
	}
	if _, ok, err := raw.Get(q, true); err != nil || !ok {
		t.Fatalf("taking the filler: %v %v", ok, err)
	}
	if err := <-flushed; err != nil {
		t.Fatalf("Flush after room was made: %v (stats %+v)", err, p.Stats())
	}
	s := p.Stats()
	checkInvariant(t, s)
	if s.Confirmed < 1 || s.DroppedBy[producer.Evicted] != 1 || s.Resent < 1 {
		t.Fatalf("want message 0 re-sent and confirmed, one eviction: %+v", s)
	}
	if d, ok, err := raw.Get(q, true); err != nil || !ok || len(d.Body) != 8 || d.Body[7] != 0 {
		t.Fatalf("the queue's head is not message 0: %v %v %q", ok, err, d.Body)
	}
}

// TestFlushNamesTheCause: a producer to a missing exchange times out its
// Flush with the broker's 404 in the error, reachable with errors.As.
// (RabbitMQ says "no exchange", LavinMQ "No exchange".)
func TestFlushNamesTheCause(t *testing.T) {
	c := newClient(t, testbroker.URL(t))
	p := newProducer(t, c, "", producer.WithExchange(testbroker.Name(t, "nox"), "k"))
	if err := p.Publish(context.Background(), producer.Message{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := p.Flush(ctx)
	t.Logf("Flush: %v", err)
	var ae *amqp.Error
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &ae) || ae.Code != amqp.NotFound {
		t.Fatalf("Flush = %v, want DeadlineExceeded and the broker's 404", err)
	}
	if !strings.Contains(err.Error(), "1 messages pending") || !strings.Contains(strings.ToLower(err.Error()), "no exchange") {
		t.Fatalf("Flush error %q does not say what is pending and why", err)
	}
}

// resendTimes records when messages were re-sent.
type resendTimes struct {
	mu sync.Mutex
	at []time.Time
}

func (r *resendTimes) OnResent(string, int) {
	r.mu.Lock()
	r.at = append(r.at, time.Now())
	r.mu.Unlock()
}

// TestNackLoopBacksOff: a message the broker keeps nacking is re-sent after
// growing pauses (like a reconnect), not in a hot loop.
func TestNackLoopBacksOff(t *testing.T) {
	c := newClient(t, testbroker.URL(t))
	q := declare(t, amqp.Table{"x-max-length": int32(1), "x-overflow": "reject-publish"})
	raw := testbroker.Raw(t)
	if err := raw.PublishWithContext(context.Background(), "", q, false, false, amqp.Publishing{Body: []byte("filler")}); err != nil {
		t.Fatal(err)
	}
	rt := &resendTimes{}
	drops := newDropLog()
	p := newProducer(t, c, q, producer.WithHooks(rt), producer.OnDrop(drops.fn), producer.WithRetryBudget(7),
		producer.WithReopenDelay(20*time.Millisecond, 2*time.Second))
	if err := p.Publish(context.Background(), producer.Message{Body: seqBody(1)}); err != nil {
		t.Fatal(err)
	}
	flush(t, p, 30*time.Second)
	if drops.count(producer.Nacked) != 1 {
		t.Fatalf("want the message dropped as nacked after the budget: %+v", p.Stats())
	}
	rt.mu.Lock()
	at := rt.at
	rt.mu.Unlock()
	if len(at) < 5 {
		t.Fatalf("%d re-sends, want 6", len(at))
	}
	var gaps []time.Duration
	for i := 1; i < len(at); i++ {
		gaps = append(gaps, at[i].Sub(at[i-1]))
	}
	t.Logf("pauses between re-sends of a nacked message: %v", gaps)
	if last, first := gaps[len(gaps)-1], gaps[0]; last < 4*first {
		t.Fatalf("pauses do not grow: first %v, last %v (%v)", first, last, gaps)
	}
}
