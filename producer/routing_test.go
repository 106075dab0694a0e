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

// topicKeys are the 30 routing keys of the topic tests: six first words
// times five second words. Message i goes with topicKeys[i%30].
var topicKeys = func() []string {
	var keys []string
	for _, a := range []string{"a", "b", "c", "d", "e", "f"} {
		for _, x := range []string{"x", "y", "z", "v", "w"} {
			keys = append(keys, a+"."+x)
		}
	}
	return keys
}()

// declareTopic declares a topic exchange and one durable queue per binding
// pattern, all deleted when the test ends, and returns the exchange and the
// queues in pattern order.
func declareTopic(t *testing.T, patterns ...string) (string, []string) {
	t.Helper()
	ch := testbroker.Raw(t)
	x := testbroker.Name(t, "x")
	if err := ch.ExchangeDeclare(x, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		t.Fatalf("declare exchange: %v", err)
	}
	var qs []string
	for i, pat := range patterns {
		q := testbroker.Name(t, fmt.Sprintf("q%d", i))
		if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
			t.Fatalf("declare %s: %v", q, err)
		}
		if err := ch.QueueBind(q, pat, x, false, nil); err != nil {
			t.Fatalf("bind %s to %s: %v", q, pat, err)
		}
		qs = append(qs, q)
	}
	t.Cleanup(func() {
		conn, err := amqp.Dial(testbroker.URL(t))
		if err != nil {
			return
		}
		defer conn.Close()
		if ch, err := conn.Channel(); err == nil {
			for _, q := range qs {
				_, _ = ch.QueueDelete(q, false, false, false)
			}
			_ = ch.ExchangeDelete(x, false, false)
		}
	})
	return x, qs
}

// topicMatch is the topic exchange's rule for the two-word keys of these
// tests and the patterns "a.*", "*.x" and "#".
func topicMatch(pattern, key string) bool {
	if pattern == "#" {
		return true
	}
	pw, kw := strings.Split(pattern, "."), strings.Split(key, ".")
	if len(pw) != len(kw) {
		return false
	}
	for i := range pw {
		if pw[i] != "*" && pw[i] != kw[i] {
			return false
		}
	}
	return true
}

// TestPerMessageRoutingKeysThroughConnectionClose publishes 3 000 messages
// over 30 routing keys from one producer to a topic exchange with three
// bound queues (a.*, *.x, #), and has the broker close the connection while
// hundreds are unconfirmed (a proxy delays what the client sends): every queue must
// receive exactly the messages its pattern matches, each key's messages in
// publish order, nothing lost.
func TestPerMessageRoutingKeysThroughConnectionClose(t *testing.T) {
	const total = 3000
	patterns := []string{"a.*", "*.x", "#"}
	x, qs := declareTopic(t, patterns...)
	px := testbroker.NewProxy(t)
	var conns connCount
	c := newClient(t, px.URL, lavinmq.WithReconnectDelay(50*time.Millisecond, time.Second), lavinmq.WithHooks(&conns))
	drops := newDropLog()
	p := newProducer(t, c, "events", producer.WithExchange(x, "unused.key"), producer.WithBufferSize(total),
		producer.WithPolicy(buffer.Raise), producer.OnDrop(drops.fn))
	ctx := context.Background()
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	px.AddToxic("slow-acks", "latency", "upstream", map[string]any{"latency": 300})
	for i := range uint64(total) {
		if err := p.Publish(ctx, producer.Message{Body: seqBody(i), RoutingKey: topicKeys[i%uint64(len(topicKeys))]}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	testbroker.Eventually(t, 30*time.Second, "some confirms", func() bool { return p.Stats().Confirmed > 0 })
	// Hold everything the broker sends until its close is in: no confirm
	// lands between this snapshot and the close, however long rabbitmqctl
	// takes, so the close always finds messages in flight.
	px.AddToxic("hold-acks", "timeout", "downstream", map[string]any{"timeout": 0})
	before := p.Stats()
	if before.Pending == 0 {
		t.Fatalf("nothing in flight before the close: %+v", before)
	}
	testbroker.CloseAllConnections(t)
	px.RemoveToxic("hold-acks")
	px.RemoveToxic("slow-acks")
	testbroker.Eventually(t, 30*time.Second, "reconnected", func() bool { return conns.n.Load() >= 2 })
	flush(t, p, time.Minute)
	s := p.Stats()
	checkInvariant(t, s)
	t.Logf("at the close: %+v; after Flush: %+v; connections %d", before, s, conns.n.Load())
	if s.Confirmed != total || drops.total() != 0 {
		t.Fatalf("want all %d confirmed and no drop: stats %+v, drops %v", total, s, drops.by)
	}
	if n := conns.n.Load(); n < 2 {
		t.Fatalf("connected %d times: the connection was never lost, the test proves nothing", n)
	}
	for qi, q := range qs {
		want := map[uint64]bool{}
		for i := range uint64(total) {
			if topicMatch(patterns[qi], topicKeys[i%uint64(len(topicKeys))]) {
				want[i] = true
			}
		}
		r := consumeAll(t, q, len(want), 500*time.Millisecond, time.Minute)
		for m := range r.count {
			if !want[m] {
				t.Fatalf("queue %s (%s) got message %d with key %s", q, patterns[qi], m, topicKeys[m%uint64(len(topicKeys))])
			}
		}
		if len(r.count) != len(want) {
			t.Fatalf("queue %s (%s) received %d distinct of %d", q, patterns[qi], len(r.count), len(want))
		}
		// Per key, first deliveries come in publish order (a re-send of a
		// message the broker had before the close is a later duplicate).
		last := map[string]int64{}
		seen := map[uint64]bool{}
		for _, m := range r.order {
			if seen[m] {
				continue
			}
			seen[m] = true
			k := topicKeys[m%uint64(len(topicKeys))]
			if prev, ok := last[k]; ok && int64(m) < prev {
				t.Fatalf("queue %s: message %d of key %s first delivered after %d: per-key order broken", q, m, k, prev)
			}
			last[k] = int64(m)
		}
		t.Logf("queue %s (%s): %d distinct of %d, %d duplicates, per-key order kept", q, patterns[qi], len(r.count), len(want), r.duplicates())
	}
}

// connCount counts the client's connections (a lavinmq hook).
type connCount struct{ n atomic.Int32 }

func (c *connCount) OnConnected(lavinmq.ConnectedEvent) { c.n.Add(1) }

// keyDrops records the routing key OnDrop shows, by reason.
type keyDrops struct {
	mu   sync.Mutex
	keys map[producer.DropReason][]string
}

func (d *keyDrops) fn(m producer.Message, _ string, r producer.DropReason) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.keys == nil {
		d.keys = map[producer.DropReason][]string{}
	}
	d.keys[r] = append(d.keys[r], m.RoutingKey)
}

func (d *keyDrops) get(r producer.DropReason) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.keys[r]...)
}

// TestUnroutableKeyReportedWithItsKey: among routable messages, one with a
// key no queue is bound to is reported alone, with reason unroutable and its
// key; the others are delivered.
func TestUnroutableKeyReportedWithItsKey(t *testing.T) {
	x, qs := declareTopic(t, "a.*")
	c := newClient(t, testbroker.URL(t))
	drops := &keyDrops{}
	p := newProducer(t, c, "events", producer.WithExchange(x, "a.default"), producer.OnDrop(drops.fn))
	ctx := context.Background()
	for i, k := range []string{"a.one", "", "nobody.listens", "a.two"} {
		if err := p.Publish(ctx, producer.Message{Body: seqBody(uint64(i)), RoutingKey: k}); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, p, 10*time.Second)
	s := p.Stats()
	got := drops.get(producer.Unroutable)
	t.Logf("unroutable keys %q, stats %+v", got, s)
	if len(got) != 1 || got[0] != "nobody.listens" || s.Confirmed != 3 || s.DroppedBy[producer.Unroutable] != 1 {
		t.Fatalf("want one unroutable drop with key nobody.listens and 3 confirmed: keys %q, stats %+v", got, s)
	}
	if n := testbroker.QueueLen(t, qs[0]); n != 3 {
		t.Fatalf("queue bound to a.* holds %d messages, want 3 (a.one, a.default, a.two)", n)
	}
}

// TestRoutingKeyOver255BytesRefused: a 256-byte key is refused at Publish,
// with an error naming RoutingKey; 255 bytes are accepted.
func TestRoutingKeyOver255BytesRefused(t *testing.T) {
	c, err := lavinmq.New("amqp://guest:guest@127.0.0.1:1/")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := producer.New(c, "events", producer.WithExchange("x", "k"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	err = p.Publish(ctx, producer.Message{RoutingKey: strings.Repeat("k", 256)})
	if !errors.Is(err, producer.ErrInvalidMessage) || !strings.Contains(err.Error(), "RoutingKey") {
		t.Fatalf("256-byte key: %v, want ErrInvalidMessage naming RoutingKey", err)
	}
	if err := p.Publish(ctx, producer.Message{RoutingKey: strings.Repeat("k", 255)}); err != nil {
		t.Fatalf("255-byte key: %v", err)
	}
	if s := p.Stats(); s.Accepted != 1 {
		t.Fatalf("accepted %d, want 1 (the refused one is not accepted)", s.Accepted)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_ = p.Close(cctx)
}

// TestUnroutableExactWithSharedMessageIDs: the same event (one MessageID)
// is published to a bound key and to an unbound one, 300 times over,
// pipelined. Only the unbound copies may be reported unroutable, and every
// bound copy must reach the queue: a return must never be matched to the
// other message with the same ID.
func TestUnroutableExactWithSharedMessageIDs(t *testing.T) {
	const pairs = 300
	x, qs := declareTopic(t, "a.*")
	c := newClient(t, testbroker.URL(t))
	drops := &keyDrops{}
	p := newProducer(t, c, "events", producer.WithExchange(x, "a.default"), producer.WithBufferSize(2*pairs),
		producer.WithPolicy(buffer.Raise), producer.OnDrop(drops.fn))
	ctx := context.Background()
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range uint64(pairs) {
		id := fmt.Sprintf("event-%d", i)
		if err := p.Publish(ctx, producer.Message{Body: seqBody(i), MessageID: id, RoutingKey: "a.ok"}); err != nil {
			t.Fatal(err)
		}
		if err := p.Publish(ctx, producer.Message{Body: seqBody(i), MessageID: id, RoutingKey: "nobody.listens"}); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, p, 30*time.Second)
	s := p.Stats()
	keys := drops.get(producer.Unroutable)
	wrong := 0
	for _, k := range keys {
		if k != "nobody.listens" {
			wrong++
		}
	}
	n := testbroker.QueueLen(t, qs[0])
	t.Logf("stats %+v; unroutable reports %d (%d with a bound key); queue holds %d", s, len(keys), wrong, n)
	if wrong != 0 || len(keys) != pairs || s.Confirmed != pairs || n != pairs {
		t.Fatalf("want %d unroutable (all nobody.listens), %d confirmed and in the queue: got %d reports (%d wrong), %d confirmed, %d in the queue",
			pairs, pairs, len(keys), wrong, s.Confirmed, n)
	}
}
