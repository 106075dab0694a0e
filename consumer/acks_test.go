package consumer_test

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
)

// queueCounts returns the broker's ready and unacknowledged message counts of
// q: rabbitmqctl list_queues on RabbitMQ, the HTTP API on LavinMQ.
func queueCounts(t *testing.T, q string) (ready, unacked int) {
	t.Helper()
	if testbroker.Broker(t) == testbroker.LavinMQ {
		var info struct {
			Ready   int `json:"messages_ready"`
			Unacked int `json:"messages_unacknowledged"`
		}
		body := testbroker.HTTPAPI(t, http.MethodGet, "/api/queues/%2F/"+url.PathEscape(q))
		if err := json.Unmarshal(body, &info); err != nil {
			t.Fatalf("LavinMQ queue %s: %v: %s", q, err, body)
		}
		return info.Ready, info.Unacked
	}
	out := testbroker.Ctl(t, "list_queues", "-q", "--no-table-headers", "name", "messages_ready", "messages_unacknowledged")
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == q {
			r, err1 := strconv.Atoi(f[1])
			u, err2 := strconv.Atoi(f[2])
			if err1 != nil || err2 != nil {
				t.Fatalf("list_queues line %q", line)
			}
			return r, u
		}
	}
	t.Fatalf("queue %s not in list_queues:\n%s", q, out)
	return 0, 0
}

// TestAckBatchOutOfOrderWithConcurrency8 settles 3000 deliveries on 8
// handlers that finish in random order: every one is acked exactly once, in
// fewer frames than deliveries, none is redelivered, and the queue ends empty.
func TestAckBatchOutOfOrderWithConcurrency8(t *testing.T) {
	const n = 3000
	q := rawQueue(t)
	c := newClient(t, testbroker.URL(t))
	k, err := consumer.New(c, q, consumer.WithConcurrency(8), consumer.WithPrefetch(100))
	if err != nil {
		t.Fatal(err)
	}
	publish(t, q, bodies("m", n)...)
	var mu sync.Mutex
	seen := make(map[string]int, n)
	var redelivered atomic.Int64
	stop := run(t, k, func(_ context.Context, d consumer.Delivery) consumer.Action {
		if d.Redelivered {
			redelivered.Add(1)
		}
		time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond) // finish out of order
		mu.Lock()
		seen[string(d.Body)]++
		mu.Unlock()
		return consumer.Ack
	})
	// The acks are all written while running (by count and by the timer), not only at the end.
	testbroker.Eventually(t, 60*time.Second, "3000 acks", func() bool { return k.Stats().Acked == n })
	s := k.Stats()
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v", err)
	}
	t.Logf("stats %+v: %.1f acks per frame", s, float64(s.Acked)/float64(s.AckFrames))
	if s.Delivered != n || s.StaleAcks != 0 || s.Resubscribes != 0 || s.NackedRequeue != 0 || s.HandedBack != 0 {
		t.Fatalf("stats %+v: want %d delivered, no stale ack, no resubscribe", s, n)
	}
	if s.AckFrames == 0 || s.AckFrames >= s.Acked/2 {
		t.Fatalf("%d acks in %d frames: not coalesced", s.Acked, s.AckFrames)
	}
	if r := redelivered.Load(); r != 0 {
		t.Fatalf("%d deliveries were redelivered", r)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, b := range bodies("m", n) {
		if seen[b] != 1 {
			t.Fatalf("%s handled %d times", b, seen[b])
		}
	}
	// The channel is closed: an ack the broker never got would be ready again.
	if ready, unacked := queueCounts(t, q); ready != 0 || unacked != 0 {
		t.Fatalf("queue holds %d ready, %d unacked", ready, unacked)
	}
}

// TestAckBatchNackWritesAcksBeforeIt holds acks back (batch 10, delay 1
// minute) and nacks the fifth delivery: the four acks before it go first, so
// when the broker redelivers the nacked message it holds that message alone.
func TestAckBatchNackWritesAcksBeforeIt(t *testing.T) {
	q := rawQueue(t)
	c := newClient(t, testbroker.URL(t))
	k, err := consumer.New(c, q, consumer.WithPrefetch(20), consumer.WithAckBatch(10, time.Minute),
		consumer.WithRequeueDelay(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	publish(t, q, bodies("m", 5)...)
	type view struct {
		acked, ready, unacked int
		stats                 consumer.Stats
	}
	atRedelivery := make(chan view, 1)
	run(t, k, func(_ context.Context, d consumer.Delivery) consumer.Action {
		if string(d.Body) != "m-4" {
			return consumer.Ack
		}
		if !d.Redelivered {
			return consumer.NackRequeue
		}
		ready, unacked := queueCounts(t, q) // the broker's view while the redelivery is in its handler
		atRedelivery <- view{ready: ready, unacked: unacked, stats: k.Stats()}
		return consumer.Ack
	})
	var v view
	select {
	case v = <-atRedelivery:
	case <-time.After(30 * time.Second):
		t.Fatal("m-4 was not redelivered within 30s")
	}
	t.Logf("at the redelivery of m-4: broker ready %d unacked %d; stats %+v", v.ready, v.unacked, v.stats)
	if v.unacked != 1 || v.ready != 0 {
		t.Fatalf("broker holds %d unacked and %d ready at the redelivery: want 1 and 0 (m-0..m-3 acked before the nack)", v.unacked, v.ready)
	}
	if v.stats.Acked != 4 || v.stats.AckFrames != 1 || v.stats.NackedRequeue != 1 {
		t.Fatalf("stats %+v: want 4 acks in 1 frame and 1 nack before the redelivery", v.stats)
	}
}

// TestAckBatchStopWritesSettledAcks stops a consumer whose acks are held back
// (batch 50, delay 1 minute) in the middle of a run, by Close and by Run's
// ctx: every delivery its handler settled is acked before the channel closes,
// the rest is back in the queue, and a new consumer gets exactly the rest.
func TestAckBatchStopWritesSettledAcks(t *testing.T) {
	for _, how := range []string{"close", "cancel"} {
		t.Run(how, func(t *testing.T) {
			const n = 200
			q := rawQueue(t)
			c := newClient(t, testbroker.URL(t))
			k, err := consumer.New(c, q, consumer.WithPrefetch(100), consumer.WithAckBatch(50, time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			publish(t, q, bodies("m", n)...)
			var mu sync.Mutex
			handled := map[string]bool{}
			half := make(chan struct{})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errc := make(chan error, 1)
			go func() {
				errc <- k.Run(ctx, func(_ context.Context, d consumer.Delivery) consumer.Action {
					mu.Lock()
					handled[string(d.Body)] = true
					if len(handled) == 70 {
						close(half)
					}
					mu.Unlock()
					time.Sleep(time.Millisecond)
					return consumer.Ack
				})
			}()
			select {
			case <-half:
			case <-time.After(30 * time.Second):
				t.Fatal("70 deliveries not handled within 30s")
			}
			if how == "close" {
				cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer ccancel()
				if err := k.Close(cctx); err != nil {
					t.Fatalf("Close: %v", err)
				}
			} else {
				cancel()
			}
			select {
			case err := <-errc:
				if how == "close" && err != nil || how == "cancel" && !errors.Is(err, context.Canceled) {
					t.Fatalf("Run = %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("Run did not return within 30s")
			}
			s := k.Stats()
			mu.Lock()
			acked := len(handled)
			mu.Unlock()
			t.Logf("stats %+v", s)
			if s.Acked != uint64(acked) || s.Delivered != uint64(acked) || s.StaleAcks != 0 {
				t.Fatalf("stats %+v: want all %d handled deliveries acked", s, acked)
			}
			if s.AckFrames > uint64(acked/50+3) {
				t.Fatalf("%d acks in %d frames: want them held back and written together", s.Acked, s.AckFrames)
			}
			// Nothing unacknowledged is left; the rest went back to the queue.
			testbroker.Eventually(t, 10*time.Second, "the unhandled rest in the queue", func() bool {
				return testbroker.QueueLen(t, q) == n-acked
			})
			// A new consumer gets exactly the ones not handled.
			k2, err := consumer.New(c, q, consumer.WithPrefetch(100))
			if err != nil {
				t.Fatal(err)
			}
			var again received
			stop2 := run(t, k2, func(_ context.Context, d consumer.Delivery) consumer.Action {
				again.add(d)
				return consumer.Ack
			})
			testbroker.Eventually(t, 30*time.Second, "the rest consumed", func() bool { return k2.Stats().Acked == uint64(n-acked) })
			_ = stop2()
			again.mu.Lock()
			defer again.mu.Unlock()
			for _, b := range again.bodies {
				if handled[b] {
					t.Fatalf("%s was acked by the first consumer and delivered again", b)
				}
			}
			if len(again.bodies) != n-acked {
				t.Fatalf("new consumer got %d, want %d", len(again.bodies), n-acked)
			}
		})
	}
}

// TestAckBatchReconnectSendsNoStaleAck loses the connection while acks are
// held back: they are dropped as stale, never written on the new channel
// (an unknown delivery tag there would be a 406 that closes it and forces a
// second resubscribe), every message is handled, and the counts add up.
func TestAckBatchReconnectSendsNoStaleAck(t *testing.T) {
	const n = 300
	q := rawQueue(t)
	c := newClient(t, testbroker.URL(t))
	k, err := consumer.New(c, q, consumer.WithPrefetch(100), consumer.WithConcurrency(4), consumer.WithAckBatch(50, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	publish(t, q, bodies("m", n)...)
	gate := make(chan struct{}) // closed once the connection is gone
	var handledFirst atomic.Int64
	var mu sync.Mutex
	seen := map[string]int{}
	stop := run(t, k, func(ctx context.Context, d consumer.Delivery) consumer.Action {
		if handledFirst.Add(1) > 40 {
			select { // the first session holds 40 settled acks (below the batch) when it dies
			case <-gate:
			case <-ctx.Done():
			}
		}
		mu.Lock()
		seen[string(d.Body)]++
		mu.Unlock()
		return consumer.Ack
	})
	testbroker.Eventually(t, 30*time.Second, "40 handled", func() bool { return k.Stats().Delivered >= 44 })
	testbroker.CloseAllConnections(t)
	testbroker.Eventually(t, 30*time.Second, "resubscribe", func() bool { return k.Stats().Resubscribes == 1 })
	close(gate)
	testbroker.Eventually(t, 60*time.Second, "every message handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == n
	})
	publish(t, q, "after")
	testbroker.Eventually(t, 30*time.Second, "a message after the reconnect", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return seen["after"] == 1
	})
	subErr := k.SubscribeErr()
	// Stopping writes the held-back acks of the second session.
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v", err)
	}
	s := k.Stats()
	t.Logf("stats %+v", s)
	if s.Resubscribes != 1 || subErr != nil {
		t.Fatalf("stats %+v, subscribe error %v: want exactly one resubscribe (no 406 on the new channel)", s, subErr)
	}
	if s.StaleAcks < 40 {
		t.Fatalf("stats %+v: want the 40+ held-back acks of the lost channel counted stale", s)
	}
	// Each message acked once; every other handled delivery was on the lost
	// channel and is counted stale (StaleAcks also counts deliveries whose
	// channel was gone before a handler started on them).
	if s.Acked != n+1 || s.Delivered-s.Acked > s.StaleAcks {
		t.Fatalf("stats %+v: want %d acked and delivered - acked <= stale", s, n+1)
	}
	// Every ack of the new channel was taken: nothing went back to the queue.
	if ready, unacked := queueCounts(t, q); ready != 0 || unacked != 0 {
		t.Fatalf("queue holds %d ready, %d unacked", ready, unacked)
	}
}

func TestNewValidatesAckBatch(t *testing.T) {
	c := offlineClient(t)
	for _, tc := range []struct {
		name  string
		n     int
		delay time.Duration
		ok    bool
	}{
		{"zero", 0, time.Millisecond, false},
		{"negative", -1, time.Millisecond, false},
		{"batch without delay", 2, 0, false},
		{"negative delay", 2, -time.Millisecond, false},
		{"delay over a minute", 2, time.Minute + time.Nanosecond, false},
		{"each at once", 1, 0, true},
		{"a minute", 50, time.Minute, true},
		{"over the prefetch: capped", 1000, time.Millisecond, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := consumer.New(c, "q", consumer.WithAckBatch(tc.n, tc.delay))
			if tc.ok != (err == nil) || err != nil && !errors.Is(err, consumer.ErrInvalidConfig) {
				t.Fatalf("WithAckBatch(%d, %v): New = %v, want ok %v", tc.n, tc.delay, err, tc.ok)
			}
		})
	}
}

// TestAckBatchOfOneAcksEachAtOnce: WithAckBatch(1, 0), and a prefetch too
// small to coalesce under the defaults, write one frame per delivery.
func TestAckBatchOfOneAcksEachAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []consumer.Option
	}{
		{"WithAckBatch(1, 0)", []consumer.Option{consumer.WithAckBatch(1, 0)}},
		{"prefetch 3", []consumer.Option{consumer.WithPrefetch(3)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := rawQueue(t)
			c := newClient(t, testbroker.URL(t))
			k, err := consumer.New(c, q, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			publish(t, q, bodies("m", 50)...)
			run(t, k, func(context.Context, consumer.Delivery) consumer.Action { return consumer.Ack })
			testbroker.Eventually(t, 30*time.Second, "50 acks", func() bool { return k.Stats().Acked == 50 })
			if s := k.Stats(); s.AckFrames != 50 {
				t.Fatalf("stats %+v: want one frame per ack", s)
			}
		})
	}
}

// TestAckBatchCappedBelowPrefetch: a batch of 100 with prefetch 10 would
// never fill (the broker stops at 10 unacknowledged) and only the 1-minute
// timer would move the queue; capped at half the prefetch, it flows.
func TestAckBatchCappedBelowPrefetch(t *testing.T) {
	const n = 200
	q := rawQueue(t)
	c := newClient(t, testbroker.URL(t))
	k, err := consumer.New(c, q, consumer.WithPrefetch(10), consumer.WithAckBatch(100, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	publish(t, q, bodies("m", n)...)
	start := time.Now()
	run(t, k, func(context.Context, consumer.Delivery) consumer.Action { return consumer.Ack })
	testbroker.Eventually(t, 30*time.Second, "200 acks well before the 1-minute timer", func() bool { return k.Stats().Acked == n })
	s := k.Stats()
	t.Logf("%d acks in %d frames in %v", s.Acked, s.AckFrames, time.Since(start))
	if s.AckFrames < n/5 {
		t.Fatalf("%d frames for %d acks: want batches of at most 5 (half the prefetch)", s.AckFrames, n)
	}
}
