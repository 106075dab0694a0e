package consumer_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

func TestConsumerResumesAfterForcedClose(t *testing.T) {
	q := rawQueue(t)
	conns := &connectedAt{}
	c := newClient(t, testbroker.URL(t), lavinmq.WithHooks(conns))
	k, err := consumer.New(c, q, consumer.WithPrefetch(10))
	if err != nil {
		t.Fatal(err)
	}
	var got received
	run(t, k, func(_ context.Context, d consumer.Delivery) consumer.Action { got.add(d); return consumer.Ack })

	before := bodies("before", 10)
	publish(t, q, before...)
	testbroker.Eventually(t, 10*time.Second, "messages before the close", func() bool { return got.has(before...) })

	closedAt := time.Now()
	testbroker.CloseAllConnections(t)
	after := bodies("after", 20)
	publish(t, q, after...)
	testbroker.Eventually(t, 15*time.Second, "every message published after the close", func() bool { return got.has(after...) })

	first := got.firstAfter(closedAt, set(after))
	reconnected := conns.last()
	if reconnected.IsZero() {
		t.Fatal("the client did not report a reconnect")
	}
	// Acks are coalesced (WithAckBatch): they count once written, within the batch's delay.
	testbroker.Eventually(t, 10*time.Second, "30 acks", func() bool { return k.Stats().Acked >= 30 })
	if s := k.Stats(); s.Resubscribes < 1 || s.Acked < 30 {
		t.Fatalf("stats %+v: want >= 1 resubscribe and >= 30 acks", s)
	}
	t.Logf("forced close: reconnected %v after the close, first delivery %v after the reconnect",
		reconnected.Sub(closedAt), first.Sub(reconnected))
}

func TestConsumerRedeclaresDeletedQueue(t *testing.T) {
	q := testbroker.Name(t, "declared")
	t.Cleanup(func() { deleteQueue(t, q) })
	c := newClient(t, testbroker.URL(t))
	k, err := consumer.New(c, q, consumer.WithDeclare(nil), consumer.WithRetryDelay(10*time.Millisecond, 100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	var got received
	run(t, k, func(_ context.Context, d consumer.Delivery) consumer.Action { got.add(d); return consumer.Ack })
	testbroker.Eventually(t, 10*time.Second, "the consumer to declare its queue", func() bool { return testbroker.QueueLen(t, q) >= 0 })
	first := bodies("first", 5)
	publish(t, q, first...)
	testbroker.Eventually(t, 10*time.Second, "messages before the delete", func() bool { return got.has(first...) })

	if _, err := testbroker.Raw(t).QueueDelete(q, false, false, false); err != nil {
		t.Fatalf("delete queue: %v", err)
	}
	testbroker.Eventually(t, 10*time.Second, "resubscribe after the delete", func() bool { return k.Stats().Resubscribes >= 1 })
	if n := testbroker.QueueLen(t, q); n < 0 {
		t.Fatal("queue was not declared again")
	}
	second := bodies("second", 5)
	publish(t, q, second...)
	testbroker.Eventually(t, 10*time.Second, "messages after the delete", func() bool { return got.has(second...) })
}

func TestConsumerHonoursPrefetchAcrossReconnect(t *testing.T) {
	q := rawQueue(t)
	c := newClient(t, testbroker.URL(t))
	k, err := consumer.New(c, q, consumer.WithPrefetch(5), consumer.WithConcurrency(10))
	if err != nil {
		t.Fatal(err)
	}
	var inFlight, peak atomic.Int64
	release := make(chan struct{})
	var got received
	run(t, k, func(_ context.Context, d consumer.Delivery) consumer.Action {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		if strings.HasPrefix(string(d.Body), "held") && !d.Redelivered {
			<-release // still running when its channel is gone
		} else {
			time.Sleep(10 * time.Millisecond)
		}
		got.add(d)
		return consumer.Ack
	})
	held := bodies("held", 20)
	publish(t, q, held...)
	testbroker.Eventually(t, 10*time.Second, "5 handlers in flight", func() bool { return inFlight.Load() == 5 })
	testbroker.CloseAllConnections(t)
	testbroker.Eventually(t, 15*time.Second, "resubscribe", func() bool { return k.Stats().Resubscribes >= 1 })
	after := bodies("after", 20)
	publish(t, q, after...)
	// The new channel has 5 more messages prefetched while the 5 stale handlers
	// still run: they must wait rather than run next to them.
	time.Sleep(300 * time.Millisecond)
	peakWhileStale := peak.Load()
	close(release)
	testbroker.Eventually(t, 15*time.Second, "every message handled", func() bool { return got.has(append(held, after...)...) })
	s := k.Stats()
	t.Logf("peak handlers in flight: %d while stale handlers ran, %d overall; stats %+v", peakWhileStale, peak.Load(), s)
	if p := peak.Load(); p != 5 {
		t.Fatalf("peak of %d handlers at once with prefetch 5, concurrency 10; want exactly 5", p)
	}
	if s.StaleAcks != 5 {
		t.Fatalf("stats %+v: want the 5 held handlers' acks stale", s)
	}
}

func TestConsumerRecoversFromHandlerPanic(t *testing.T) {
	q := rawQueue(t)
	c := newClient(t, testbroker.URL(t))
	k, err := consumer.New(c, q)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []bool // Redelivered of each call
	run(t, k, func(_ context.Context, d consumer.Delivery) consumer.Action {
		mu.Lock()
		seen = append(seen, d.Redelivered)
		mu.Unlock()
		if !d.Redelivered {
			panic("handler bug")
		}
		return consumer.Ack
	})
	publish(t, q, "boom")
	testbroker.Eventually(t, 10*time.Second, "the redelivered message to be acked", func() bool { return k.Stats().Acked == 1 })
	s := k.Stats()
	if s.Panics != 1 || s.NackedRequeue != 1 || s.Delivered != 2 {
		t.Fatalf("stats %+v: want 1 panic, 1 nack_requeue, 2 deliveries", s)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[0] || !seen[1] {
		t.Fatalf("Redelivered flags %v, want [false true]", seen)
	}
}

func TestRunWaitsForInFlightHandlersOnCancel(t *testing.T) {
	q := rawQueue(t)
	c := newClient(t, testbroker.URL(t))
	k, err := consumer.New(c, q)
	if err != nil {
		t.Fatal(err)
	}
	started, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var events []string
	event := func(e string) { mu.Lock(); events = append(events, e); mu.Unlock() }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		err := k.Run(ctx, func(context.Context, consumer.Delivery) consumer.Action {
			close(started)
			<-release
			event("handler returned")
			return consumer.Ack
		})
		event("run returned")
		errc <- err
	}()
	publish(t, q, "slow")
	<-started
	cancel()
	select {
	case err := <-errc:
		t.Fatalf("Run returned (%v) while a handler was in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 2 || events[0] != "handler returned" || events[1] != "run returned" {
		t.Fatalf("events %v", events)
	}
	// The handler finished before the channel closed, so its Ack reached the broker.
	if s := k.Stats(); s.Acked != 1 || s.StaleAcks != 0 || s.InFlight != 0 {
		t.Fatalf("stats %+v: want the in-flight message acked", s)
	}
	if n := testbroker.QueueLen(t, q); n != 0 {
		t.Fatalf("queue holds %d messages after the ack", n)
	}
}

func TestStaleAckAfterReconnectIsDropped(t *testing.T) {
	q := rawQueue(t)
	c := newClient(t, testbroker.URL(t))
	k, err := consumer.New(c, q)
	if err != nil {
		t.Fatal(err)
	}
	started, release := make(chan struct{}), make(chan struct{})
	var got received
	run(t, k, func(_ context.Context, d consumer.Delivery) consumer.Action {
		if string(d.Body) == "held" && !d.Redelivered {
			close(started)
			<-release
		}
		got.add(d)
		return consumer.Ack
	})
	publish(t, q, "held")
	<-started
	testbroker.CloseAllConnections(t)
	testbroker.Eventually(t, 15*time.Second, "resubscribe", func() bool { return k.Stats().Resubscribes == 1 })
	close(release) // its Ack belongs to the lost channel
	testbroker.Eventually(t, 10*time.Second, "the held message to be redelivered and acked", func() bool { return k.Stats().Acked == 1 })
	if s := k.Stats(); s.StaleAcks != 1 {
		t.Fatalf("stats %+v: want 1 stale ack", s)
	}
	publish(t, q, "next")
	testbroker.Eventually(t, 10*time.Second, "a message after the stale ack", func() bool { return got.has("next") })
	// Its ack is coalesced (WithAckBatch): it counts once written, within the batch's delay.
	testbroker.Eventually(t, 10*time.Second, "the ack of the message after", func() bool { return k.Stats().Acked >= 2 })
	// No channel error (406 unknown delivery tag) followed the stale ack.
	if s := k.Stats(); s.Resubscribes != 1 || s.Acked != 2 {
		t.Fatalf("stats %+v: want 1 resubscribe and 2 acks", s)
	}
	if n := testbroker.QueueLen(t, q); n != 0 {
		t.Fatalf("queue holds %d messages", n)
	}
}

func TestNackActionsReachBroker(t *testing.T) {
	cases := []struct {
		action    consumer.Action
		wantLen   int
		wantCount func(consumer.Stats) uint64
	}{
		{consumer.NackDiscard, 0, func(s consumer.Stats) uint64 { return s.NackedDiscard }},
		{consumer.NackRequeue, 5, func(s consumer.Stats) uint64 { return s.NackedRequeue }},
	}
	for _, tc := range cases {
		t.Run(tc.action.String(), func(t *testing.T) {
			q := rawQueue(t)
			c := newClient(t, testbroker.URL(t))
			k, err := consumer.New(c, q, consumer.WithPrefetch(5))
			if err != nil {
				t.Fatal(err)
			}
			stop := run(t, k, func(context.Context, consumer.Delivery) consumer.Action { return tc.action })
			publish(t, q, bodies("n", 5)...)
			testbroker.Eventually(t, 10*time.Second, "5 nacks", func() bool { return tc.wantCount(k.Stats()) >= 5 })
			if err := stop(); !errors.Is(err, context.Canceled) {
				t.Fatalf("Run = %v", err)
			}
			testbroker.Eventually(t, 5*time.Second, "queue length", func() bool { return testbroker.QueueLen(t, q) == tc.wantLen })
			if s := k.Stats(); s.Acked != 0 || s.StaleAcks != 0 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}
