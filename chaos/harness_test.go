//go:build chaos

package chaos

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/buffer"
	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

// stream follows one set of distinct messages (sequence numbers 0..total-1)
// from Publish to the consumer's handler. Everything is atomic: the publisher
// loop, the producer's hooks and callbacks and the consumer's handlers all
// write to it concurrently.
type stream struct {
	total    int
	accepted []atomic.Bool
	recv     []atomic.Uint32
	dropped  []atomic.Uint32 // DropReason of the OnDrop call, 0 if none

	rejected    atomic.Uint64 // Publish returned an error
	doubleDrops atomic.Uint64 // OnDrop called twice for one message
	badBodies   atomic.Uint64 // deliveries that are not ours
	next        atomic.Int64  // next sequence number to publish

	start       atomic.Int64 // unix ns, publishing started
	maxCall     atomic.Int64 // ns, longest Publish call
	lastConfirm atomic.Int64 // unix ns
	maxGap      atomic.Int64 // ns, longest time without a confirm while publishing
	lastDeliv   atomic.Int64 // unix ns

	confirms   timeline // when each confirm arrived
	deliveries timeline // when each delivery arrived

	paused atomic.Bool // the publisher loop publishes nothing while set
	hurry  atomic.Bool // the publisher loop publishes in big batches while set
}

func newStream(total int) *stream {
	return &stream{
		total:    total,
		accepted: make([]atomic.Bool, total),
		recv:     make([]atomic.Uint32, total),
		dropped:  make([]atomic.Uint32, total),
	}
}

func seqBody(i uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, i)
	return b
}

func storeMax(a *atomic.Int64, v int64) {
	for {
		old := a.Load()
		if v <= old || a.CompareAndSwap(old, v) {
			return
		}
	}
}

// onDrop is the producer's OnDrop callback.
func (s *stream) onDrop(m producer.Message, _ string, r producer.DropReason) {
	if len(m.Body) != 8 {
		s.badBodies.Add(1)
		return
	}
	seq := binary.BigEndian.Uint64(m.Body)
	if seq >= uint64(s.total) {
		s.badBodies.Add(1)
		return
	}
	if !s.dropped[seq].CompareAndSwap(0, uint32(r)) {
		s.doubleDrops.Add(1)
	}
}

// OnConfirmed implements producer.HookConfirmed: it measures the longest gap between confirms.
func (s *stream) OnConfirmed(string, time.Duration) { s.settled() }

// OnWritten implements producer.HookWritten: in FireAndForget mode a write
// settles a message where Confirm mode has a confirm.
func (s *stream) OnWritten(string) { s.settled() }

var (
	_ producer.HookConfirmed = (*stream)(nil)
	_ producer.HookWritten   = (*stream)(nil)
)

// settled records a confirm (or, FireAndForget, a write) and the gap since the previous one.
func (s *stream) settled() {
	now := time.Now().UnixNano()
	prev := s.lastConfirm.Swap(now)
	if prev == 0 {
		prev = s.start.Load()
	}
	if prev > 0 {
		storeMax(&s.maxGap, now-prev)
	}
	s.confirms.add(now)
}

// timeline records event times (unix ns), in nearly increasing order.
type timeline struct {
	mu sync.Mutex
	ts []int64
}

func (tl *timeline) add(t int64) {
	tl.mu.Lock()
	tl.ts = append(tl.ts, t)
	tl.mu.Unlock()
}

// firstAfter returns the earliest event after t.
func (tl *timeline) firstAfter(t int64) (int64, bool) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	best, ok := int64(0), false
	// Scan back from the newest; events of concurrent goroutines may be
	// appended slightly out of order, so go 100ms past t before stopping.
	for i := len(tl.ts) - 1; i >= 0 && tl.ts[i] > t-int64(100*time.Millisecond); i-- {
		if v := tl.ts[i]; v > t && (!ok || v < best) {
			best, ok = v, true
		}
	}
	return best, ok
}

// resetGapClock restarts the confirm-gap clock (after a deliberate pause of the publisher).
func (s *stream) resetGapClock() { s.lastConfirm.Store(time.Now().UnixNano()) }

// handle is the consumer's handler: it counts every delivery of every sequence number.
func (s *stream) handle(_ context.Context, d consumer.Delivery) consumer.Action {
	s.see(d.Body)
	return consumer.Ack
}

func (s *stream) see(body []byte) {
	if len(body) != 8 {
		s.badBodies.Add(1)
		return
	}
	seq := binary.BigEndian.Uint64(body)
	if seq >= uint64(s.total) {
		s.badBodies.Add(1)
		return
	}
	s.recv[seq].Add(1)
	now := time.Now().UnixNano()
	s.lastDeliv.Store(now)
	s.deliveries.add(now)
}

// pacing says how the publisher loop publishes: batch messages every tick.
type pacing struct {
	tick  time.Duration
	batch int
}

// ratePacing publishes about perSecond messages a second.
func ratePacing(perSecond int) pacing {
	if perSecond < 100 {
		return pacing{tick: time.Second / time.Duration(max(1, perSecond)), batch: 1}
	}
	return pacing{tick: 10 * time.Millisecond, batch: perSecond / 100}
}

// publish runs the publisher loop: every sequence number once, paced, until
// all are published or ctx ends. A Publish call is bounded by ctx (the Block
// policy waits in it). It returns when done.
func (s *stream) publish(ctx context.Context, t *testing.T, p *producer.Producer, pc pacing) {
	tick := time.NewTicker(pc.tick)
	defer tick.Stop()
	s.start.CompareAndSwap(0, time.Now().UnixNano())
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if s.paused.Load() {
			continue
		}
		n := pc.batch
		if s.hurry.Load() {
			n = max(n, 50) // 5_000/s: catch up without flooding a small buffer
		}
		if !s.publishN(ctx, t, p, n) {
			return
		}
	}
}

// publishN publishes the next n sequence numbers; false when all are
// published or ctx ended. It is safe next to the publisher loop.
func (s *stream) publishN(ctx context.Context, t *testing.T, p *producer.Producer, n int) bool {
	for range n {
		seq := s.next.Add(1) - 1
		if seq >= int64(s.total) {
			return false
		}
		t0 := time.Now()
		err := p.Publish(ctx, producer.Message{Body: seqBody(uint64(seq))})
		storeMax(&s.maxCall, int64(time.Since(t0)))
		switch {
		case err == nil:
			s.accepted[seq].Store(true)
		case errors.Is(err, buffer.ErrFull):
			s.rejected.Add(1)
		case ctx.Err() != nil:
			s.rejected.Add(1)
			return false
		default:
			s.rejected.Add(1)
			t.Errorf("publish %d: unexpected error: %v", seq, err)
		}
	}
	return true
}

// missing counts accepted messages neither received nor reported dropped.
func (s *stream) missing() int {
	n := 0
	for i := range s.total {
		if s.accepted[i].Load() && s.dropped[i].Load() == 0 && s.recv[i].Load() == 0 {
			n++
		}
	}
	return n
}

// waitReceived waits until every accepted message was received or dropped, or timeout.
func (s *stream) waitReceived(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for s.missing() > 0 {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// awaitRecovery waits until, after since, the producer had a confirm and
// (when delivery is set) the consumer had a delivery. It returns the time
// from since to the later of the two first events after since (whenever it is
// called), or false after timeout.
func (s *stream) awaitRecovery(since time.Time, timeout time.Duration, delivery bool) (time.Duration, bool) {
	deadline := time.Now().Add(timeout)
	t := since.UnixNano()
	for {
		c, okC := s.confirms.firstAfter(t)
		d, okD := s.deliveries.firstAfter(t)
		if okC && (okD || !delivery) {
			at := c
			if delivery {
				at = max(c, d)
			}
			return time.Duration(at - t), true
		}
		if time.Now().After(deadline) {
			return 0, false
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// tally is what a stream adds to a row.
type tally struct {
	accepted, received, lost, duplicates, droppedButReceived int
	droppedBy                                                map[string]uint64
	dropped                                                  uint64
}

func (s *stream) tally() tally {
	r := tally{droppedBy: map[string]uint64{}}
	for i := range s.total {
		acc, c, d := s.accepted[i].Load(), int(s.recv[i].Load()), producer.DropReason(s.dropped[i].Load())
		if acc {
			r.accepted++
		}
		if c > 0 {
			r.received++
			r.duplicates += c - 1
		}
		if d != 0 {
			r.dropped++
			r.droppedBy[d.String()]++
			if c > 0 {
				r.droppedButReceived++
			}
		}
		if acc && d == 0 && c == 0 {
			r.lost++
		}
	}
	return r
}

// fill adds the stream's counts and the producer's stats to row and checks
// that they agree with each other.
func fill(t *testing.T, row *Row, s *stream, st producer.Stats) tally {
	t.Helper()
	ta := s.tally()
	if st.Accepted != st.Confirmed+st.Dropped+st.Pending {
		t.Errorf("stats do not add up: accepted %d != confirmed %d + dropped %d + pending %d", st.Accepted, st.Confirmed, st.Dropped, st.Pending)
	}
	if st.Accepted != uint64(ta.accepted) {
		t.Errorf("producer accepted %d, Publish returned nil %d times", st.Accepted, ta.accepted)
	}
	if st.Dropped != ta.dropped {
		t.Errorf("producer dropped %d, OnDrop saw %d distinct messages", st.Dropped, ta.dropped)
	}
	if n := s.doubleDrops.Load(); n > 0 {
		t.Errorf("OnDrop was called twice for %d messages", n)
	}
	if n := s.badBodies.Load(); n > 0 {
		t.Errorf("%d deliveries or drops with a foreign body", n)
	}
	if row.DroppedBy == nil {
		row.DroppedBy = map[string]uint64{}
	}
	row.Published += st.Accepted
	row.Rejected += s.rejected.Load()
	row.Confirmed += st.Confirmed
	row.Dropped += st.Dropped
	for r, n := range st.DroppedBy {
		if n > 0 {
			row.DroppedBy[r.String()] += n
		}
	}
	row.Received += ta.received
	row.Lost += ta.lost
	row.Duplicates += ta.duplicates
	row.MaxPublishCallMs = max(row.MaxPublishCallMs, ms(time.Duration(s.maxCall.Load())))
	row.MaxConfirmGapMs = max(row.MaxConfirmGapMs, ms(time.Duration(s.maxGap.Load())))
	if st.Pending != 0 {
		t.Errorf("%d messages still pending at the end", st.Pending)
	}
	return ta
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func appendNote(row *Row, format string, args ...any) {
	n := fmt.Sprintf(format, args...)
	if row.Notes == "" {
		row.Notes = n
	} else {
		row.Notes += "; " + n
	}
}

// --- clients, producers, consumers ---------------------------------------

// testLogger sends the SDK's warnings (everything with CHAOS_DEBUG set) to
// t.Log until the test ends.
func testLogger(t *testing.T) *slog.Logger {
	h := &tHandler{t: t, done: new(atomic.Bool)}
	t.Cleanup(func() { h.done.Store(true) }) // registered before any Close: runs after them
	return slog.New(h)
}

type tHandler struct {
	t     *testing.T
	done  *atomic.Bool
	attrs []slog.Attr
}

func (h *tHandler) Enabled(_ context.Context, l slog.Level) bool {
	return os.Getenv("CHAOS_DEBUG") != "" || l >= slog.LevelWarn
}

func (h *tHandler) Handle(_ context.Context, r slog.Record) error {
	if h.done.Load() {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s", r.Time.Format("15:04:05.000"), r.Level, r.Message)
	for _, a := range h.attrs {
		fmt.Fprintf(&b, " %s", a)
	}
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s", a); return true })
	h.t.Log(b.String())
	return nil
}

func (h *tHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &tHandler{t: h.t, done: h.done, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h *tHandler) WithGroup(string) slog.Handler { return h }

func newClient(t *testing.T, url string, opts ...lavinmq.Option) *lavinmq.Client {
	t.Helper()
	opts = append([]lavinmq.Option{lavinmq.WithLogger(testLogger(t))}, opts...)
	c, err := lavinmq.New(url, opts...)
	if err != nil {
		t.Fatalf("lavinmq.New: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// newProducer makes a producer wired to s (OnDrop, confirm hook) and closes it at the end.
func newProducer(t *testing.T, c *lavinmq.Client, queue string, s *stream, opts ...producer.Option) *producer.Producer {
	t.Helper()
	opts = append([]producer.Option{producer.OnDrop(s.onDrop), producer.WithHooks(s), producer.WithLogger(testLogger(t))}, opts...)
	p, err := producer.New(c, queue, opts...)
	if err != nil {
		t.Fatalf("producer.New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p
}

// startConsumer runs an SDK consumer feeding s until the returned stop is
// called (also at the end of the test).
func startConsumer(t *testing.T, c *lavinmq.Client, queue string, s *stream, opts ...consumer.Option) (k *consumer.Consumer, stop func()) {
	t.Helper()
	opts = append([]consumer.Option{consumer.WithPrefetch(200), consumer.WithConcurrency(4), consumer.WithLogger(testLogger(t))}, opts...)
	k, err := consumer.New(c, queue, opts...)
	if err != nil {
		t.Fatalf("consumer.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx, s.handle) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil && !errors.Is(err, context.Canceled) {
					t.Errorf("consumer.Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("consumer.Run did not return within 30s of its ctx ending")
			}
		})
	}
	t.Cleanup(stop)
	return k, stop
}

func flush(t *testing.T, p *producer.Producer, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Errorf("flush: %v (stats %+v)", err, p.Stats())
	}
}

// deleteQueueAtEnd deletes queue on the broker at url when the test ends.
func deleteQueueAtEnd(t *testing.T, url, queue string) {
	t.Cleanup(func() { _, _ = deleteQueue(url, queue) })
}

func deleteQueue(url, queue string) (int, error) {
	conn, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return 0, err
	}
	return ch.QueueDelete(queue, false, false, false)
}

// --- hooks ------------------------------------------------------------------

// connEvents records the client's connection events.
type connEvents struct {
	mu           sync.Mutex
	reconnects   []time.Time
	downtimes    []time.Duration
	endpoints    []string
	blocked      []time.Time
	unblocked    []time.Time
	lost         []time.Time
	disconnected int
}

func (e *connEvents) OnConnected(ev lavinmq.ConnectedEvent) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.endpoints = append(e.endpoints, ev.Endpoint)
	if ev.Reconnect {
		e.reconnects = append(e.reconnects, time.Now())
		e.downtimes = append(e.downtimes, ev.Downtime)
	}
}

func (e *connEvents) OnDisconnected(lavinmq.DisconnectedEvent) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.disconnected++
	e.lost = append(e.lost, time.Now())
}

// OnBlocked implements lavinmq.HookBlocked.
func (e *connEvents) OnBlocked(ev lavinmq.BlockedEvent) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if ev.Blocked {
		e.blocked = append(e.blocked, time.Now())
	} else {
		e.unblocked = append(e.unblocked, time.Now())
	}
}

var _ lavinmq.HookBlocked = (*connEvents)(nil) // a changed signature must not compile silently

func (e *connEvents) snapshot() connEvents {
	e.mu.Lock()
	defer e.mu.Unlock()
	return connEvents{
		reconnects:   append([]time.Time(nil), e.reconnects...),
		downtimes:    append([]time.Duration(nil), e.downtimes...),
		endpoints:    append([]string(nil), e.endpoints...),
		blocked:      append([]time.Time(nil), e.blocked...),
		unblocked:    append([]time.Time(nil), e.unblocked...),
		lost:         append([]time.Time(nil), e.lost...),
		disconnected: e.disconnected,
	}
}

// --- scripts ----------------------------------------------------------------

// script runs scripts/NAME ARGS from the repository root with the test's
// environment (BROKER_NAME, BROKER_PORT) and returns how long it took.
func script(t *testing.T, timeout time.Duration, name string, args ...string) (string, time.Duration) {
	t.Helper()
	out, d, err := tryScript(t, timeout, name, args...)
	if err != nil {
		t.Fatalf("scripts/%s %v: %v\n%s", name, args, err, out)
	}
	return out, d
}

func tryScript(t *testing.T, timeout time.Duration, name string, args ...string) (string, time.Duration, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	root := testbroker.Root(t)
	cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", name), args...)
	cmd.Dir = root
	cmd.WaitDelay = 5 * time.Second
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	return string(out), time.Since(t0), err
}

func durationsMs(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = float64(d.Milliseconds())
	}
	return out
}

func percentiles(ds []time.Duration) (lo, med, hi time.Duration) {
	if len(ds) == 0 {
		return 0, 0, 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[0], s[len(s)/2], s[len(s)-1]
}

// checkConfirmLoss fails the test when a Confirm-mode row lost a message.
func checkConfirmLoss(t *testing.T, row *Row) {
	t.Helper()
	if row.Mode == producer.Confirm.String() && row.Lost != 0 {
		t.Errorf("Confirm mode lost %d messages (accepted, never received, never reported dropped)", row.Lost)
	}
}
