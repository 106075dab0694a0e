package consumer_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
)

// TestPriorityConsumerGetsMessagesFirst: two consumers of one queue, with
// room in their prefetch; the one with x-priority 10 gets every message.
func TestPriorityConsumerGetsMessagesFirst(t *testing.T) {
	q := rawQueue(t)
	c := newClient(t, testbroker.URL(t))
	var high, low atomic.Int64
	for _, p := range []struct {
		prio int32
		n    *atomic.Int64
	}{{0, &low}, {10, &high}} {
		k, err := consumer.New(c, q, consumer.WithPriority(p.prio), consumer.WithPrefetch(100))
		if err != nil {
			t.Fatal(err)
		}
		n := p.n
		run(t, k, func(context.Context, consumer.Delivery) consumer.Action { n.Add(1); return consumer.Ack })
	}
	testbroker.Eventually(t, 10*time.Second, "both consumers subscribed", func() bool {
		q, err := testbroker.Raw(t).QueueDeclarePassive(q, false, false, false, false, nil)
		return err == nil && q.Consumers == 2
	})
	publish(t, q, bodies("m", 50)...)
	testbroker.Eventually(t, 10*time.Second, "50 handled", func() bool { return high.Load()+low.Load() == 50 })
	if high.Load() != 50 {
		t.Fatalf("x-priority 10 consumer got %d, x-priority 0 got %d; want 50 and 0", high.Load(), low.Load())
	}
	t.Logf("x-priority 10: %d messages, x-priority 0: %d", high.Load(), low.Load())
}

// TestExclusiveConsumerRefusesOthers: while an exclusive consumer is
// subscribed the broker refuses another consumer of the queue (403).
func TestExclusiveConsumerRefusesOthers(t *testing.T) {
	q := rawQueue(t)
	c := newClient(t, testbroker.URL(t))
	k, err := consumer.New(c, q, consumer.WithExclusive())
	if err != nil {
		t.Fatal(err)
	}
	var got received
	run(t, k, func(_ context.Context, d consumer.Delivery) consumer.Action { got.add(d); return consumer.Ack })
	publish(t, q, "one")
	testbroker.Eventually(t, 10*time.Second, "the exclusive consumer to consume", func() bool { return got.has("one") })
	_, err = testbroker.Raw(t).Consume(q, "other", false, false, false, false, nil)
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != amqp.AccessRefused {
		t.Fatalf("another consumer of the exclusively consumed queue: %v, want 403 ACCESS_REFUSED", err)
	}
	t.Logf("other consumer refused: %v", err)
}

type subFailures struct {
	mu   sync.Mutex
	errs []error
}

func (s *subFailures) OnSubscribeFailed(_ string, err error, _ int) {
	s.mu.Lock()
	s.errs = append(s.errs, err)
	s.mu.Unlock()
}

func (s *subFailures) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.errs)
}

// TestSubscribeErrSaysWhy: a consumer of a queue that does not exist says so
// (SubscribeErr and HookSubscribeFailed carry the 404); once the queue
// exists it consumes and SubscribeErr is nil again.
func TestSubscribeErrSaysWhy(t *testing.T) {
	q := testbroker.Name(t, "missing")
	t.Cleanup(func() { deleteQueue(t, q) })
	c := newClient(t, testbroker.URL(t))
	hook := &subFailures{}
	k, err := consumer.New(c, q, consumer.WithHooks(hook), consumer.WithRetryDelay(20*time.Millisecond, 100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	var got received
	run(t, k, func(_ context.Context, d consumer.Delivery) consumer.Action { got.add(d); return consumer.Ack })
	testbroker.Eventually(t, 10*time.Second, "a subscribe failure reported", func() bool { return hook.count() > 0 && k.SubscribeErr() != nil })
	var ae *amqp.Error
	if err := k.SubscribeErr(); !errors.As(err, &ae) || ae.Code != amqp.NotFound {
		t.Fatalf("SubscribeErr() = %v, want the 404", err)
	}
	t.Logf("SubscribeErr: %v (%d failures reported to the hook)", k.SubscribeErr(), hook.count())
	if _, err := testbroker.Raw(t).QueueDeclare(q, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	publish(t, q, "now")
	testbroker.Eventually(t, 10*time.Second, "consuming once the queue exists", func() bool { return got.has("now") })
	if err := k.SubscribeErr(); err != nil {
		t.Fatalf("SubscribeErr() = %v while subscribed, want nil", err)
	}
}
