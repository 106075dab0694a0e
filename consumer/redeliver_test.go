package consumer_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
)

// dlxQueue declares a queue (with extra args) that dead-letters to a fresh
// dead-letter queue through the default exchange; both deleted at the end.
func dlxQueue(t *testing.T, durable bool, extra amqp.Table) (q, dlq string) {
	t.Helper()
	q, dlq = testbroker.Name(t, "q"), testbroker.Name(t, "dlq")
	raw := testbroker.Raw(t)
	if _, err := raw.QueueDeclare(dlq, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	args := amqp.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq}
	for k, v := range extra {
		args[k] = v
	}
	if _, err := raw.QueueDeclare(q, durable, false, false, false, args); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteQueue(t, q); deleteQueue(t, dlq) })
	return q, dlq
}

// TestPoisonMessageDiscardedAfterMaxRedeliveries: one message among 1 000
// always panics its handler; with WithMaxRedeliveries(3) it is handled 3
// times in all, across a forced reconnect in the middle, then dead-lettered;
// the other 999 are handled and acked.
func TestPoisonMessageDiscardedAfterMaxRedeliveries(t *testing.T) {
	q, dlq := dlxQueue(t, false, nil)
	c := newClient(t, testbroker.URL(t))
	k, err := consumer.New(c, q, consumer.WithMaxRedeliveries(3), consumer.WithPrefetch(50), consumer.WithConcurrency(4),
		consumer.WithRequeueDelay(20*time.Millisecond, 200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	var poisonCalls atomic.Int64
	var mu sync.Mutex
	seen := map[string]int{}
	firstPoison := make(chan struct{})
	run(t, k, func(_ context.Context, d consumer.Delivery) consumer.Action {
		if string(d.Body) == "poison" {
			if poisonCalls.Add(1) == 1 {
				close(firstPoison)
			}
			panic("poison")
		}
		mu.Lock()
		seen[string(d.Body)]++
		mu.Unlock()
		return consumer.Ack
	})
	msgs := bodies("m", 999)
	publish(t, q, msgs[:500]...)
	publish(t, q, "poison")
	publish(t, q, msgs[500:]...)
	select {
	case <-firstPoison:
	case <-time.After(15 * time.Second):
		t.Fatal("the poison message never reached the handler")
	}
	testbroker.CloseAllConnections(t) // the reconnect in the middle
	testbroker.Eventually(t, 30*time.Second, "the poison message in the dead-letter queue", func() bool { return testbroker.QueueLen(t, dlq) == 1 })
	testbroker.Eventually(t, 30*time.Second, "all 999 others handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == 999
	})
	testbroker.Eventually(t, 10*time.Second, "the queue empty", func() bool { return testbroker.QueueLen(t, q) == 0 })
	time.Sleep(300 * time.Millisecond) // room for a wrong extra call
	if n := poisonCalls.Load(); n != 3 {
		t.Fatalf("handler called %d times for the poison message, want 3", n)
	}
	mu.Lock()
	dups := 0
	for _, n := range seen {
		dups += n - 1
	}
	mu.Unlock()
	s := k.Stats()
	if s.Discarded != 1 || s.Resubscribes < 1 || s.Acked < 999 {
		t.Fatalf("stats %+v: want 1 discarded, >= 1 resubscribe, >= 999 acked", s)
	}
	t.Logf("poison handled %d times then dead-lettered; 999 others handled (%d handled twice: in flight at the forced close); stats %+v",
		poisonCalls.Load(), dups, s)
}

// TestRequeueBacksOff: a message whose handler always returns NackRequeue
// waits a growing delay before each requeue, and is discarded after the
// limit.
func TestRequeueBacksOff(t *testing.T) {
	q, dlq := dlxQueue(t, false, nil)
	c := newClient(t, testbroker.URL(t))
	const initial = 50 * time.Millisecond
	k, err := consumer.New(c, q, consumer.WithMaxRedeliveries(4), consumer.WithRequeueDelay(initial, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var calls []time.Time
	run(t, k, func(context.Context, consumer.Delivery) consumer.Action {
		mu.Lock()
		calls = append(calls, time.Now())
		mu.Unlock()
		return consumer.NackRequeue
	})
	publish(t, q, "fails")
	testbroker.Eventually(t, 15*time.Second, "the message dead-lettered", func() bool { return testbroker.QueueLen(t, dlq) == 1 })
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 4 {
		t.Fatalf("handler called %d times, want 4", len(calls))
	}
	var gaps []time.Duration
	for i := 1; i < len(calls); i++ {
		gap := calls[i].Sub(calls[i-1])
		gaps = append(gaps, gap)
		// Lower bounds only: a timer never fires early.
		if want := initial << (i - 1); gap < want {
			t.Fatalf("gap before call %d is %v, want >= %v (gaps %v)", i+1, gap, want, gaps)
		}
	}
	if s := k.Stats(); s.NackedRequeue != 3 || s.Discarded != 1 {
		t.Fatalf("stats %+v: want 3 requeued, 1 discarded", s)
	}
	t.Logf("gaps between the 4 calls: %v", gaps)
}

// TestQuorumDeliveryCountCarriesAcrossConsumers: on a quorum queue the
// broker's x-delivery-count decides: a message that failed twice on one
// Consumer is handled once more by a fresh Consumer (whose own record is
// empty) and then discarded under WithMaxRedeliveries(3).
func TestQuorumDeliveryCountCarriesAcrossConsumers(t *testing.T) {
	args := amqp.Table{"x-queue-type": "quorum"}
	if testbroker.Broker(t) == testbroker.LavinMQ {
		// LavinMQ ignores x-queue-type quorum and sends x-delivery-count only
		// on queues with a delivery limit (and not on a first delivery).
		args["x-delivery-limit"] = int32(100)
	}
	q, dlq := dlxQueue(t, true, args)
	c := newClient(t, testbroker.URL(t))
	a, err := consumer.New(c, q, consumer.WithMaxRedeliveries(3), consumer.WithRequeueDelay(300*time.Millisecond, 300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	var aCalls atomic.Int64
	second := make(chan struct{})
	aErr := make(chan error, 1)
	go func() {
		aErr <- a.Run(context.Background(), func(context.Context, consumer.Delivery) consumer.Action {
			if aCalls.Add(1) == 2 {
				close(second)
			}
			return consumer.NackRequeue
		})
	}()
	publish(t, q, "fails")
	select {
	case <-second:
	case <-time.After(15 * time.Second):
		t.Fatal("the first consumer did not handle the message twice")
	}
	// Close during the second requeue delay: the nack goes out after the
	// subscription is cancelled, so the first consumer sees no third delivery.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-aErr; err != nil {
		t.Fatalf("Run: %v", err)
	}
	b, err := consumer.New(c, q, consumer.WithMaxRedeliveries(3))
	if err != nil {
		t.Fatal(err)
	}
	var bCalls atomic.Int64
	var header atomic.Value
	run(t, b, func(_ context.Context, d consumer.Delivery) consumer.Action {
		bCalls.Add(1)
		header.Store(strconv.Quote(func() string {
			v, ok := d.Headers["x-delivery-count"]
			if !ok {
				return "absent"
			}
			return strconv.FormatInt(toInt(v), 10)
		}()))
		return consumer.NackRequeue
	})
	testbroker.Eventually(t, 15*time.Second, "the message dead-lettered", func() bool { return testbroker.QueueLen(t, dlq) == 1 })
	time.Sleep(200 * time.Millisecond)
	if aCalls.Load() != 2 || bCalls.Load() != 1 {
		t.Fatalf("calls: first consumer %d, second %d; want 2 and 1", aCalls.Load(), bCalls.Load())
	}
	t.Logf("first consumer handled it %d times, the fresh one %d time (x-delivery-count %v) before the discard; stats %+v",
		aCalls.Load(), bCalls.Load(), header.Load(), b.Stats())
}

func toInt(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case int32:
		return int64(n)
	case int:
		return int64(n)
	}
	return -1
}
