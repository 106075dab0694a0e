package producer_test

import (
	"context"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

func newClient(t testing.TB, url string, opts ...lavinmq.Option) *lavinmq.Client {
	t.Helper()
	c, err := lavinmq.New(url, opts...)
	if err != nil {
		t.Fatalf("lavinmq.New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func newProducer(t testing.TB, c *lavinmq.Client, queue string, opts ...producer.Option) *producer.Producer {
	t.Helper()
	p, err := producer.New(c, queue, opts...)
	if err != nil {
		t.Fatalf("producer.New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p
}

// declare creates a durable queue for the test with a raw channel and deletes it afterwards.
func declare(t testing.TB, args amqp.Table) string {
	t.Helper()
	q := testbroker.Name(t, "q")
	ch := testbroker.Raw(t)
	if _, err := ch.QueueDeclare(q, true, false, false, false, args); err != nil {
		t.Fatalf("declare %s: %v", q, err)
	}
	t.Cleanup(func() {
		conn, err := amqp.Dial(testbroker.URL(t))
		if err != nil {
			return
		}
		defer conn.Close()
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(q, false, false, false)
		}
	})
	return q
}

func seqBody(i uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, i)
	return b
}

// dropLog records OnDrop calls.
type dropLog struct {
	mu    sync.Mutex
	seqs  []uint64
	by    map[producer.DropReason]int
	queue string
}

func newDropLog() *dropLog { return &dropLog{by: map[producer.DropReason]int{}} }

func (d *dropLog) fn(m producer.Message, queue string, r producer.DropReason) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(m.Body) == 8 {
		d.seqs = append(d.seqs, binary.BigEndian.Uint64(m.Body))
	}
	d.by[r]++
	d.queue = queue
}

func (d *dropLog) count(r producer.DropReason) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.by[r]
}

func (d *dropLog) total() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, v := range d.by {
		n += v
	}
	return n
}

// received is what a raw consumer saw: every sequence number in arrival order.
type received struct {
	order []uint64
	count map[uint64]int
}

func (r received) duplicates() int {
	n := 0
	for _, c := range r.count {
		n += c - 1
	}
	return n
}

// consumeAll reads queue with a raw consumer until want distinct messages
// arrived and nothing more came for quiet, or timeout.
func consumeAll(t testing.TB, queue string, want int, quiet, timeout time.Duration) received {
	t.Helper()
	conn, err := amqp.Dial(testbroker.URL(t))
	if err != nil {
		t.Fatalf("raw dial: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("raw channel: %v", err)
	}
	if err := ch.Qos(1000, 0, false); err != nil {
		t.Fatalf("qos: %v", err)
	}
	ds, err := ch.Consume(queue, "", true, false, false, false, nil)
	if err != nil {
		t.Fatalf("consume %s: %v", queue, err)
	}
	r := received{count: map[uint64]int{}}
	deadline := time.After(timeout)
	for {
		idle := time.After(quiet)
		if len(r.count) < want {
			idle = nil
		}
		select {
		case d, ok := <-ds:
			if !ok {
				t.Fatalf("raw consumer closed after %d messages", len(r.order))
			}
			if len(d.Body) != 8 {
				t.Fatalf("unexpected body %q", d.Body)
			}
			s := binary.BigEndian.Uint64(d.Body)
			r.order = append(r.order, s)
			r.count[s]++
		case <-idle:
			return r
		case <-deadline:
			t.Logf("consumeAll: timeout with %d distinct of %d wanted", len(r.count), want)
			return r
		}
	}
}

func flush(t testing.TB, p *producer.Producer, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatalf("flush: %v (stats %+v)", err, p.Stats())
	}
}

func checkInvariant(t testing.TB, s producer.Stats) {
	t.Helper()
	if s.Accepted != s.Confirmed+s.Dropped+s.Pending {
		t.Fatalf("accepted %d != confirmed %d + dropped %d + pending %d", s.Accepted, s.Confirmed, s.Dropped, s.Pending)
	}
	var by uint64
	for _, n := range s.DroppedBy {
		by += n
	}
	if by != s.Dropped {
		t.Fatalf("dropped by reason sums to %d, total %d", by, s.Dropped)
	}
}
