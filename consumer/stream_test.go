package consumer_test

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

// streamQueue declares a stream queue on url and publishes n messages with
// bodies "0".."n-1" (confirmed); it is deleted when the test ends.
func streamQueue(t *testing.T, url string, n int) string {
	t.Helper()
	q := testbroker.Name(t, "stream")
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(q, true, false, false, false, amqp.Table{"x-queue-type": "stream"}); err != nil {
		t.Fatalf("declare stream: %v", err)
	}
	t.Cleanup(func() {
		if conn, err := amqp.Dial(url); err == nil {
			if ch, err := conn.Channel(); err == nil {
				_, _ = ch.QueueDelete(q, false, false, false)
			}
			conn.Close()
		}
	})
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, n))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range n {
		if err := ch.PublishWithContext(ctx, "", q, false, false, amqp.Publishing{Body: []byte(strconv.Itoa(i)), DeliveryMode: amqp.Persistent}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	for range n {
		select {
		case c := <-confirms:
			if !c.Ack {
				t.Fatalf("message %d nacked", c.DeliveryTag)
			}
		case <-ctx.Done():
			t.Fatal("confirms did not arrive")
		}
	}
	return q
}

// offsets records the stream offsets a handler saw.
type offsets struct {
	mu    sync.Mutex
	count map[int64]int
	first int64
	n     atomic.Int64
}

func newOffsets() *offsets { return &offsets{count: map[int64]int{}, first: -1} }

func (o *offsets) handle(_ context.Context, d consumer.Delivery) consumer.Action {
	o.mu.Lock()
	if o.first < 0 {
		o.first = d.StreamOffset
	}
	o.count[d.StreamOffset]++
	o.mu.Unlock()
	o.n.Add(1)
	return consumer.Ack
}

// check reports the offsets in [lo, hi] never seen and the deliveries over one per offset.
func (o *offsets) check(lo, hi int64) (missing []int64, dups int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for off := lo; off <= hi; off++ {
		if o.count[off] == 0 {
			missing = append(missing, off)
		}
	}
	for _, c := range o.count {
		dups += c - 1
	}
	return missing, dups
}

func (o *offsets) distinct() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.count)
}

const streamPrefetch = 100

// disruption is done once at handlers have been called; with hold, the
// handlers wait meanwhile (until it is done or their ctx ends), so that it
// lands while deliveries are in flight.
type disruption struct {
	at   int64
	hold bool
	do   func(t testing.TB)
}

// consumeStreamAcross consumes a 10 000-message stream from "first" through
// the disruptions (offsets from base: RabbitMQ 0, LavinMQ 1); every offset must be handled, with at most the prefetch
// count handled twice. It returns the stream and the consumer's last settled
// offset.
func consumeStreamAcross(t *testing.T, url string, base int64, steps ...disruption) (string, int64) {
	const total = 10_000
	q := streamQueue(t, url, total)
	c := newClient(t, url, lavinmq.WithReconnectDelay(50*time.Millisecond, time.Second))
	k, err := consumer.New(c, q, consumer.WithStreamOffset("first"), consumer.WithPrefetch(streamPrefetch), consumer.WithConcurrency(4),
		consumer.WithRetryDelay(50*time.Millisecond, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	o := newOffsets()
	var gate atomic.Pointer[chan struct{}]
	var holdAt atomic.Int64
	holdAt.Store(1 << 62)
	run(t, k, func(ctx context.Context, d consumer.Delivery) consumer.Action {
		if g := gate.Load(); g != nil && o.n.Load() >= holdAt.Load() {
			select {
			case <-*g:
			case <-ctx.Done(): // the channel is gone: give up, it comes again
				return consumer.NackRequeue
			}
		}
		time.Sleep(50 * time.Microsecond)
		return o.handle(ctx, d)
	})
	var at []int64
	for _, st := range steps {
		g := make(chan struct{})
		if st.hold {
			holdAt.Store(st.at)
			gate.Store(&g)
		}
		testbroker.Eventually(t, 120*time.Second, "handled "+strconv.FormatInt(st.at, 10), func() bool { return o.n.Load() >= st.at })
		at = append(at, o.n.Load())
		st.do(t)
		gate.Store(nil)
		close(g)
	}
	testbroker.Eventually(t, 120*time.Second, "all 10 000 offsets handled", func() bool { return o.distinct() >= total })
	time.Sleep(200 * time.Millisecond)
	missing, dups := o.check(base, base+total-1)
	if len(missing) > 0 {
		t.Fatalf("%d offsets never handled, first %v", len(missing), missing[:min(len(missing), 10)])
	}
	if dups > streamPrefetch {
		t.Fatalf("%d offsets handled twice, want at most the prefetch %d", dups, streamPrefetch)
	}
	last, ok := k.StreamOffset()
	if !ok || last != base+total-1 {
		t.Fatalf("StreamOffset() = %d, %v; want %d", last, ok, base+total-1)
	}
	s := k.Stats()
	if s.Resubscribes < uint64(len(steps)) {
		t.Fatalf("stats %+v: %d disruptions caused %d resubscribes", s, len(steps), s.Resubscribes)
	}
	t.Logf("10 000-message stream from \"first\", disrupted after %v handled: every offset handled, %d handled twice (prefetch %d), %d deliveries in all (the rest given up by handlers whose ctx ended), %d resubscribes, %d stale acks; StreamOffset %d",
		at, dups, streamPrefetch, s.Delivered, s.Resubscribes, s.StaleAcks, last)
	return q, last
}

// TestStreamResumesAfterForcedClose: the connection is closed by the broker
// in the middle of a 10 000-message stream; the consumer resumes after the
// last offset it handled, neither from "first" again nor from "next".
func TestStreamResumesAfterForcedClose(t *testing.T) {
	url := testbroker.URL(t)
	base := int64(0) // RabbitMQ numbers a stream's offsets from 0
	if testbroker.Broker(t) == testbroker.LavinMQ {
		base = 1 // LavinMQ from 1
	}
	q, last := consumeStreamAcross(t, url, base,
		disruption{at: 3000, hold: true, do: testbroker.CloseAllConnections},
		disruption{at: 6000, hold: true, do: testbroker.CloseAllConnections})
	streamStartsAt(t, url, q, last-4999, last-4999)
}

// streamStartsAt consumes q from offset from (as an application passing back
// a stored offset) and checks that the first delivery is want.
func streamStartsAt(t *testing.T, url, q string, from, want int64) {
	t.Helper()
	c := newClient(t, url)
	k, err := consumer.New(c, q, consumer.WithStreamOffset(from), consumer.WithPrefetch(10))
	if err != nil {
		t.Fatal(err)
	}
	o := newOffsets()
	stop := run(t, k, o.handle)
	testbroker.Eventually(t, 15*time.Second, "deliveries from the stored offset", func() bool { return o.n.Load() >= 10 })
	_ = stop()
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.first != want {
		t.Fatalf("subscribed from offset %d: first delivery has offset %d, want %d", from, o.first, want)
	}
	t.Logf("from stored offset %d: first delivery offset %d", from, o.first)
}

// TestStreamFromNextLosesNothingPublishedDuringAnOutage: a consumer from
// "next" loses its connection before anything arrived; what is published
// while it is cut off is delivered once it is back (subscribing from "next"
// again would skip it).
func TestStreamFromNextLosesNothingPublishedDuringAnOutage(t *testing.T) {
	url := testbroker.URL(t)
	q := streamQueue(t, url, 10) // older messages, not wanted from "next"
	// The fallback resumes from the subscribe's second less one (the broker
	// keeps timestamps in seconds): subscribe more than 2 s after them.
	time.Sleep(2100 * time.Millisecond)
	p := testbroker.NewProxy(t)
	c := newClient(t, p.URL, lavinmq.WithReconnectDelay(20*time.Millisecond, 200*time.Millisecond))
	var logs testbroker.LogBuffer
	k, err := consumer.New(c, q, consumer.WithStreamOffset("next"), consumer.WithRetryDelay(20*time.Millisecond, 200*time.Millisecond),
		consumer.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	var got received
	run(t, k, func(_ context.Context, d consumer.Delivery) consumer.Action { got.add(d); return consumer.Ack })
	testbroker.Eventually(t, 10*time.Second, "the stream consumer subscribed", func() bool {
		return strings.Contains(logs.String(), "consumer: subscribed")
	})
	p.Disable()
	during := bodies("during", 5)
	publish(t, q, during...)
	p.Enable()
	testbroker.Eventually(t, 15*time.Second, "the messages published during the outage", func() bool { return got.has(during...) })
	if got.has("0") {
		t.Fatal("a message published before the \"next\" subscribe was delivered")
	}
	t.Logf("from \"next\": %d deliveries after the outage, the %d published during it among them; stats %+v", len(got.bodies), len(during), k.Stats())
}
