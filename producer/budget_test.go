package producer_test

import (
	"context"
	"encoding/binary"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/buffer"
	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

// The byte budget's acceptance tests: 2 000 distinct, fully written 256 KiB
// bodies (500 MiB in all) into a producer with a 16 MiB budget whose client
// never connects (an outage), under each policy.
const (
	budget16  = 16 << 20
	bigBody   = 256 << 10
	bigCount  = 2000
	heapSlack = 8 << 20 // the test's own heap and the runtime's, over the budget
)

// pattern fills the big bodies (copied, so every page is written).
var pattern = func() []byte {
	b := make([]byte, bigBody)
	for j := range b {
		b[j] = byte(j*7 + 1)
	}
	return b
}()

// bigMessage returns a new 256 KiB body, every byte written, that starts
// and ends with its sequence number.
func bigMessage(i int) producer.Message {
	b := make([]byte, bigBody)
	copy(b, pattern)
	binary.BigEndian.PutUint64(b, uint64(i))
	binary.BigEndian.PutUint64(b[bigBody-8:], uint64(i))
	return producer.Message{Body: b}
}

// budgetWatch samples Stats on its own goroutine while a test publishes and
// records the largest PendingBytes it saw, and any snapshot that breaks the
// byte invariants.
type budgetWatch struct {
	p       *producer.Producer
	stop    chan struct{}
	done    chan struct{}
	maxSeen atomic.Int64
	samples atomic.Int64
	mu      sync.Mutex
	bad     []producer.Stats
}

func watchBudget(p *producer.Producer) *budgetWatch {
	w := &budgetWatch{p: p, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			w.check(p.Stats())
			time.Sleep(20 * time.Microsecond)
		}
	}()
	return w
}

func (w *budgetWatch) check(s producer.Stats) {
	w.samples.Add(1)
	if s.PendingBytes > w.maxSeen.Load() {
		w.maxSeen.Store(s.PendingBytes) // one writer at a time: the watcher, then the test after end
	}
	// (Counts and bytes are not one atomic snapshot: a Publish reserves its
	// bytes before it counts the message accepted, and a settle releases
	// them after counting it settled.)
	if s.PendingBytes > s.CapacityBytes || s.PendingBytes != s.BufferedBytes+s.InFlightBytes || s.BufferedBytes < 0 || s.InFlightBytes < 0 {
		w.mu.Lock()
		w.bad = append(w.bad, s)
		w.mu.Unlock()
	}
}

func (w *budgetWatch) end(t *testing.T) {
	t.Helper()
	close(w.stop)
	<-w.done
	if len(w.bad) > 0 {
		t.Fatalf("%d snapshots break the byte invariants, first %+v", len(w.bad), w.bad[0])
	}
	t.Logf("%d concurrent Stats snapshots, largest PendingBytes %d (budget %d)", w.samples.Load(), w.maxSeen.Load(), budget16)
}

// liveHeap is the heap in use after a collection: what the program holds.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// publishBig publishes bigCount big messages, checking Stats after each
// call and the live heap every 100, and returns the errors Publish gave and
// the largest heap growth over base.
func publishBig(t *testing.T, p *producer.Producer, w *budgetWatch, ctxFor func() (context.Context, context.CancelFunc)) (errs []error, heapGrowth uint64) {
	t.Helper()
	base := liveHeap()
	for i := range bigCount {
		ctx, cancel := ctxFor()
		if err := p.Publish(ctx, bigMessage(i)); err != nil {
			errs = append(errs, err)
		}
		cancel()
		w.check(p.Stats())
		if i%100 == 99 {
			if h := liveHeap(); h > base && h-base > heapGrowth {
				heapGrowth = h - base
			}
		}
	}
	return errs, heapGrowth
}

func background() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}

// checkHeap: the bodies the producer no longer holds are garbage, so the
// live heap grows by the budget at most (plus slack), not by the 500 MiB
// published.
func checkHeap(t *testing.T, growth uint64) {
	t.Helper()
	t.Logf("live heap grew by at most %.1f MiB while publishing %d MiB (budget %d MiB + slack %d MiB)",
		float64(growth)/(1<<20), bigCount*bigBody>>20, budget16>>20, heapSlack>>20)
	if growth > budget16+heapSlack {
		t.Fatalf("live heap grew by %d bytes, more than the budget %d + %d", growth, budget16, heapSlack)
	}
}

func TestBufferBytesDropOldestEvictsToFit(t *testing.T) {
	c := offline(t)
	var mu sync.Mutex
	var evicted []uint64
	p := newProducer(t, c, "q", producer.WithBufferBytes(budget16), producer.WithPolicy(buffer.DropOldest),
		producer.OnDrop(func(m producer.Message, _ string, r producer.DropReason) {
			if r == producer.Evicted {
				mu.Lock()
				evicted = append(evicted, binary.BigEndian.Uint64(m.Body))
				mu.Unlock()
			}
		}))
	w := watchBudget(p)
	errs, growth := publishBig(t, p, w, background)
	w.end(t)
	if len(errs) > 0 {
		t.Fatalf("%d Publish errors under DropOldest, first %v", len(errs), errs[0])
	}
	s := p.Stats()
	checkInvariant(t, s)
	fit := budget16 / bigBody // no properties: a message counts its body only
	if s.Accepted != bigCount || s.Pending != uint64(fit) || s.PendingBytes != int64(fit*bigBody) || s.BufferedBytes != s.PendingBytes {
		t.Fatalf("after %d publishes: %+v, want all accepted and the newest %d (%d bytes) buffered", bigCount, s, fit, fit*bigBody)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(evicted) != bigCount-fit || s.DroppedBy[producer.Evicted] != uint64(len(evicted)) {
		t.Fatalf("%d evictions reported through OnDrop, Stats %d, want %d", len(evicted), s.DroppedBy[producer.Evicted], bigCount-fit)
	}
	for i, seq := range evicted {
		if seq != uint64(i) {
			t.Fatalf("eviction %d was message %d, want the oldest, %d", i, seq, i)
		}
	}
	checkHeap(t, growth)
}

func TestBufferBytesRaiseRefuses(t *testing.T) {
	c := offline(t)
	drops := newDropLog()
	p := newProducer(t, c, "q", producer.WithBufferBytes(budget16), producer.WithPolicy(buffer.Raise), producer.OnDrop(drops.fn))
	w := watchBudget(p)
	errs, growth := publishBig(t, p, w, background)
	w.end(t)
	fit := budget16 / bigBody
	if len(errs) != bigCount-fit {
		t.Fatalf("%d Publish errors, want %d", len(errs), bigCount-fit)
	}
	for _, err := range errs {
		if !errors.Is(err, producer.ErrBytesFull) || !errors.Is(err, buffer.ErrFull) {
			t.Fatalf("Publish error %v, want ErrBytesFull wrapping buffer.ErrFull", err)
		}
	}
	t.Logf("refusal: %v", errs[0])
	s := p.Stats()
	checkInvariant(t, s)
	if s.Accepted != uint64(fit) || s.PendingBytes != int64(fit*bigBody) || drops.total() != 0 {
		t.Fatalf("%+v, %d drops: want the first %d accepted and nothing dropped", s, drops.total(), fit)
	}
	checkHeap(t, growth)
}

func TestBufferBytesBlockWaitsBoundedByCtx(t *testing.T) {
	c := offline(t)
	drops := newDropLog()
	p := newProducer(t, c, "q", producer.WithBufferBytes(budget16), producer.WithPolicy(buffer.Block), producer.OnDrop(drops.fn))
	w := watchBudget(p)
	errs, growth := publishBig(t, p, w, func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), time.Millisecond)
	})
	w.end(t)
	fit := budget16 / bigBody
	if len(errs) != bigCount-fit {
		t.Fatalf("%d Publish errors, want %d", len(errs), bigCount-fit)
	}
	for _, err := range errs {
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Publish error %v, want its ctx's deadline", err)
		}
	}
	s := p.Stats()
	checkInvariant(t, s)
	if s.Accepted != uint64(fit) || s.PendingBytes != int64(fit*bigBody) || drops.total() != 0 {
		t.Fatalf("%+v, %d drops: want the first %d accepted and nothing dropped", s, drops.total(), fit)
	}
	checkHeap(t, growth)
	// A Publish waiting for bytes ends with ErrClosed when the producer closes.
	res := make(chan error, 1)
	go func() { res <- p.Publish(context.Background(), bigMessage(-1)) }()
	time.Sleep(50 * time.Millisecond)
	closeNow(p)
	select {
	case err := <-res:
		if !errors.Is(err, producer.ErrClosed) {
			t.Fatalf("waiting Publish returned %v after Close, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a Publish waiting for bytes did not return after Close")
	}
	if s := p.Stats(); s.PendingBytes != 0 || s.DroppedBy[producer.Shutdown] != uint64(fit) {
		t.Fatalf("after Close: %+v, want 0 bytes and %d shutdown drops", s, fit)
	}
}

// TestBufferBytesCountsHeadersAndProperties: a message counts its body,
// routing key, string properties and encoded headers; one over the whole
// budget is refused with ErrTooLarge.
func TestBufferBytesCountsHeadersAndProperties(t *testing.T) {
	c := offline(t)
	p := newProducer(t, c, "q", producer.WithBufferBytes(1000), producer.WithExchange("x", "k"))
	m := producer.Message{
		Body:        make([]byte, 100),
		RoutingKey:  "rk",                                 // 2
		MessageID:   "id-1",                               // 4
		ContentType: "text/plain",                         // 10
		Headers:     amqp.Table{"k": "vv", "n": int32(1)}, // 4 + (1+1+5+2) + (1+1+5) = 20
	}
	if err := p.Publish(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	const want = 100 + 2 + 4 + 10 + 20
	if s := p.Stats(); s.PendingBytes != want || s.BufferedBytes != want || s.CapacityBytes != 1000 {
		t.Fatalf("%+v, want %d bytes buffered of 1000", s, want)
	}
	m.Body = make([]byte, 1000-want+100+1) // one byte over the whole budget
	if err := p.Publish(context.Background(), m); !errors.Is(err, producer.ErrTooLarge) {
		t.Fatalf("Publish of a message over the budget: %v, want ErrTooLarge", err)
	}
	closeNow(p)
	if s := p.Stats(); s.PendingBytes != 0 {
		t.Fatalf("after Close: %d bytes pending", s.PendingBytes)
	}
}

func TestWithBufferBytesRejectsZeroAndNegative(t *testing.T) {
	c := offline(t)
	for _, n := range []int64{0, -1} {
		if _, err := producer.New(c, "q", producer.WithBufferBytes(n)); !errors.Is(err, producer.ErrInvalidConfig) {
			t.Errorf("WithBufferBytes(%d): %v, want ErrInvalidConfig", n, err)
		}
	}
	p := newProducer(t, c, "q")
	if s := p.Stats(); s.CapacityBytes != producer.DefaultBufferBytes {
		t.Fatalf("default budget %d, want %d", s.CapacityBytes, producer.DefaultBufferBytes)
	}
}

// TestBufferBytesBlockResumesOnConfirms publishes the 2 000 big messages
// through the broker under Block with a 16 MiB budget: Publish waits for
// confirms to free bytes, never holds more than the budget, and every
// message is confirmed.
func TestBufferBytesBlockResumesOnConfirms(t *testing.T) {
	q := declare(t, nil)
	c := newClient(t, testbroker.URL(t))
	p := newProducer(t, c, q, producer.WithBufferBytes(budget16), producer.WithPolicy(buffer.Block))
	w := watchBudget(p)
	errs, growth := publishBig(t, p, w, background)
	flush(t, p, 2*time.Minute)
	w.end(t)
	if len(errs) > 0 {
		t.Fatalf("%d Publish errors, first %v", len(errs), errs[0])
	}
	s := p.Stats()
	checkInvariant(t, s)
	if s.Confirmed != bigCount || s.PendingBytes != 0 {
		t.Fatalf("%+v, want %d confirmed and 0 bytes pending", s, bigCount)
	}
	checkHeap(t, growth)
	if n := testbroker.QueueLen(t, q); n != bigCount {
		t.Fatalf("queue holds %d messages, want %d", n, bigCount)
	}
}

// TestBufferBytesDropOldestKeepsHalfForTheBuffer: under DropOldest the
// publisher holds at most half the budget (plus the message that crossed
// it) on the wire, so Publish always finds buffered messages to evict and
// never fails; every message is confirmed or evicted.
func TestBufferBytesDropOldestKeepsHalfForTheBuffer(t *testing.T) {
	const (
		budget = 1 << 20
		body   = 64 << 10
		n      = 2000
	)
	q := declare(t, nil)
	c := newClient(t, testbroker.URL(t))
	drops := newDropLog()
	p := newProducer(t, c, q, producer.WithBufferBytes(budget), producer.WithPolicy(buffer.DropOldest), producer.OnDrop(drops.fn))
	if err := c.WaitConnected(context.Background()); err != nil {
		t.Fatal(err)
	}
	var maxTaken int64
	for i := range n {
		if err := p.Publish(context.Background(), producer.Message{Body: make([]byte, body)}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		s := p.Stats()
		maxTaken = max(maxTaken, s.InFlightBytes)
		if s.PendingBytes > budget {
			t.Fatalf("publish %d: %+v over the budget", i, s)
		}
	}
	flush(t, p, time.Minute)
	s := p.Stats()
	checkInvariant(t, s)
	t.Logf("largest InFlightBytes %d (cap %d + one message); %+v", maxTaken, budget/2, s)
	if maxTaken > budget/2+body || maxTaken == 0 {
		t.Fatalf("the publisher held up to %d bytes, want (0, %d]", maxTaken, budget/2+body)
	}
	if s.Confirmed+s.DroppedBy[producer.Evicted] != n || s.Dropped != s.DroppedBy[producer.Evicted] || drops.count(producer.Evicted) != int(s.Dropped) || s.PendingBytes != 0 {
		t.Fatalf("%+v, OnDrop %v: want every message confirmed or evicted, 0 bytes left", s, drops.by)
	}
}
