package producer_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
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

// Integration tests of write coalescing (lavinmq.Conn.Cork around each burst
// of the publisher, producer/burst.go) against the broker.

// writeSyscalls is this process's count of write system calls so far
// (syscw in /proc/self/io): the socket writes of the client, of the
// in-process proxy and of anything else the test does.
func writeSyscalls(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Fatalf("counting write syscalls needs /proc/self/io: %v", err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "syscw:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no syscw in /proc/self/io:\n%s", b)
	return 0
}

// preloaded returns a client whose broker is out of reach (a disabled
// proxy) and the proxy: what producers accept meanwhile waits in their
// buffers, and is published in full bursts once the proxy is enabled.
func preloaded(t *testing.T, opts ...lavinmq.Option) (*lavinmq.Client, *testbroker.Proxy) {
	t.Helper()
	px := testbroker.NewProxy(t)
	px.Disable()
	opts = append([]lavinmq.Option{lavinmq.WithReconnectDelay(20*time.Millisecond, 100*time.Millisecond)}, opts...)
	return newClient(t, px.URL, opts...), px
}

// TestCorkingWritesABurstInOneSyscall publishes a buffered backlog and counts
// the write syscalls of the whole process per message, with coalescing on
// (the default) and off.
func TestCorkingWritesABurstInOneSyscall(t *testing.T) {
	const n = 20_000
	for _, tc := range []struct {
		name    string
		mode    producer.Mode
		cork    bool
		atMost  float64 // write syscalls per message
		atLeast float64
	}{
		{"fire_and_forget/corked", producer.FireAndForget, true, 0.05, 0},
		{"fire_and_forget/off", producer.FireAndForget, false, 10, 0.9},
		{"confirm/corked", producer.Confirm, true, 0.5, 0},
		{"confirm/off", producer.Confirm, false, 10, 0.9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, px := preloaded(t, lavinmq.WithWriteCoalescing(tc.cork))
			q := declare(t, nil)
			p := newProducer(t, c, q, producer.WithMode(tc.mode), producer.WithBufferSize(n), producer.WithPolicy(buffer.Raise))
			for i := range uint64(n) {
				if err := p.Publish(context.Background(), producer.Message{Body: seqBody(i)}); err != nil {
					t.Fatal(err)
				}
			}
			before := writeSyscalls(t)
			px.Enable()
			flush(t, p, time.Minute)
			per := float64(writeSyscalls(t)-before) / n
			t.Logf("%s: %.4f write syscalls per message (%d messages)", tc.name, per, n)
			if per > tc.atMost || per < tc.atLeast {
				t.Fatalf("%.4f write syscalls per message, want in [%v, %v]", per, tc.atLeast, tc.atMost)
			}
			r := consumeAll(t, q, n, 300*time.Millisecond, time.Minute)
			checkFirstOrder(t, r, n)
		})
	}
}

// TestTwoProducersOnOneClientCorkTogether runs two Confirm producers on one
// client, both with a backlog, so that their bursts and corks overlap: every
// message arrives once and in order, and the writes stay coalesced.
func TestTwoProducersOnOneClientCorkTogether(t *testing.T) {
	const n = 10_000
	c, px := preloaded(t)
	qs := []string{declare(t, nil), declare(t, nil)}
	var ps []*producer.Producer
	for _, q := range qs {
		p := newProducer(t, c, q, producer.WithBufferSize(n), producer.WithPolicy(buffer.Raise))
		for i := range uint64(n) {
			if err := p.Publish(context.Background(), producer.Message{Body: seqBody(i)}); err != nil {
				t.Fatal(err)
			}
		}
		ps = append(ps, p)
	}
	before := writeSyscalls(t)
	px.Enable()
	for _, p := range ps {
		flush(t, p, time.Minute)
	}
	per := float64(writeSyscalls(t)-before) / (2 * n)
	t.Logf("two producers: %.4f write syscalls per message", per)
	if per > 0.5 {
		t.Fatalf("%.4f write syscalls per message with two producers corking, want at most 0.5", per)
	}
	for _, q := range qs {
		r := consumeAll(t, q, n, 300*time.Millisecond, time.Minute)
		checkFirstOrder(t, r, n)
		if d := r.duplicates(); d != 0 {
			t.Fatalf("queue %s: %d duplicates without any fault", q, d)
		}
	}
}

// TestConsumerAcksFlowWhileAProducerBursts consumes, with manual acks and a
// prefetch of 10, on the same connection as a Confirm producer (the
// defaults) that bursts the whole time. Each ack written while the producer
// holds its cork waits for the end of that burst only: the consumer, which
// gets 10 new deliveries only after acking, finishes while the producer is
// still publishing (held acks would stall it at 10 until the producer
// stops). The same without coalescing, for comparison in the log.
//
// (A FireAndForget producer has no window: corked, it can write faster than
// the broker reads, and then the socket's send queue, not the cork, delays
// the acks behind it. See the README's note on sharing a connection.)
func TestConsumerAcksFlowWhileAProducerBursts(t *testing.T) {
	for _, cork := range []bool{true, false} {
		t.Run(fmt.Sprintf("coalescing=%v", cork), func(t *testing.T) { consumeWhileBursting(t, cork) })
	}
}

func consumeWhileBursting(t *testing.T, cork bool) {
	const deliveries = 2000
	c := newClient(t, testbroker.URL(t), lavinmq.WithHeartbeat(time.Second), lavinmq.WithWriteCoalescing(cork))
	qc, qp := declare(t, nil), declare(t, nil)
	raw := testbroker.Raw(t)
	for i := range uint64(deliveries) {
		if err := raw.Publish("", qc, false, false, amqp.Publishing{Body: seqBody(i)}); err != nil {
			t.Fatal(err)
		}
	}
	testbroker.Eventually(t, 30*time.Second, "the consumer's queue filled", func() bool { return testbroker.QueueLen(t, qc) == deliveries })
	p := newProducer(t, c, qp, producer.WithBufferSize(4096), producer.WithPolicy(buffer.Block))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the producer bursts until the consumer is done (or a minute)
		defer wg.Done()
		body := make([]byte, 16)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := p.Publish(ctx, producer.Message{Body: body}); err != nil {
				return
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	testbroker.Eventually(t, 30*time.Second, "the producer under way", func() bool { return p.Stats().Confirmed > 5000 })

	cn, err := c.Connection(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := cn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if err := ch.Qos(10, 0, false); err != nil {
		t.Fatal(err)
	}
	ds, err := ch.Consume(qc, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	writtenAtStart := p.Stats().Confirmed
	t0 := time.Now()
	for got := 0; got < deliveries; got++ {
		select {
		case d := <-ds:
			if err := d.Ack(false); err != nil {
				t.Fatalf("ack %d: %v", got, err)
			}
		case <-ctx.Done():
			t.Fatalf("consumer stalled at %d of %d deliveries while the producer bursts (written meanwhile: %d)", got, deliveries, p.Stats().Confirmed-writtenAtStart)
		}
	}
	took := time.Since(t0)
	written := p.Stats().Confirmed - writtenAtStart
	t.Logf("consumed and acked %d (prefetch 10) in %v while the producer wrote %d messages on the same connection", deliveries, took, written)
	if written < 500 {
		t.Fatalf("the producer wrote only %d messages while the consumer ran: it was not bursting, the test proves nothing", written)
	}
	if !c.Connected() {
		t.Fatal("the connection was lost during the test")
	}
}

// discCount counts lost connections (a lavinmq hook).
type discCount struct{ n atomic.Int32 }

func (d *discCount) OnDisconnected(lavinmq.DisconnectedEvent) { d.n.Add(1) }

// TestCorkedConfirmThroughCloseAllConnectionsResendsInOrder has the broker
// close the connection (connection.close 320) while a backlog is published
// in corked bursts and thousands are unconfirmed (acks delayed by a proxy):
// nothing is lost, and the re-sent messages arrive in their original order.
func TestCorkedConfirmThroughCloseAllConnectionsResendsInOrder(t *testing.T) {
	const total = 20_000
	px := testbroker.NewProxy(t)
	var lost discCount
	c := newClient(t, px.URL, lavinmq.WithReconnectDelay(50*time.Millisecond, time.Second), lavinmq.WithHooks(&lost))
	q := declare(t, nil)
	p := newProducer(t, c, q, producer.WithMaxInFlight(5000), producer.WithBufferSize(total), producer.WithPolicy(buffer.Raise))
	px.AddToxic("slow-acks", "latency", "downstream", map[string]any{"latency": 300})
	for i := range uint64(total) {
		if err := p.Publish(context.Background(), producer.Message{Body: seqBody(i)}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	testbroker.Eventually(t, 30*time.Second, "some confirms", func() bool { return p.Stats().Confirmed > 1000 })
	testbroker.CloseAllConnections(t)
	testbroker.Eventually(t, 30*time.Second, "the connection closed by the broker", func() bool { return lost.n.Load() > 0 })
	px.RemoveToxic("slow-acks")
	flush(t, p, time.Minute)
	s := p.Stats()
	checkInvariant(t, s)
	if s.Confirmed != total || s.Dropped != 0 {
		t.Fatalf("want every message confirmed, none dropped: %+v", s)
	}
	r := consumeAll(t, q, total, 500*time.Millisecond, time.Minute)
	checkFirstOrder(t, r, total)
	checkResendOrder(t, r)
	t.Logf("connections lost %d, re-sent %d, %d duplicates delivered, order kept", lost.n.Load(), s.Resent, r.duplicates())
}

// checkFirstOrder checks that all of 0..n-1 arrived and that their first
// deliveries came in publish order.
func checkFirstOrder(t *testing.T, r received, n int) {
	t.Helper()
	if len(r.count) != n {
		t.Fatalf("received %d distinct of %d", len(r.count), n)
	}
	next := uint64(0)
	seen := make(map[uint64]bool, n)
	for _, m := range r.order {
		if seen[m] {
			continue
		}
		if m != next {
			t.Fatalf("first delivery of %d where %d was expected: order broken", m, next)
		}
		seen[m] = true
		next++
	}
}

// checkResendOrder checks that the second deliveries (re-sends of messages
// the broker had before the loss) came in ascending order.
func checkResendOrder(t *testing.T, r received) {
	t.Helper()
	lastDup := int64(-1)
	seen := map[uint64]bool{}
	for _, m := range r.order {
		if !seen[m] {
			seen[m] = true
			continue
		}
		if int64(m) <= lastDup {
			t.Fatalf("re-sent %d arrived after re-sent %d: re-send order broken", m, lastDup)
		}
		lastDup = int64(m)
	}
}
