package lavinmq_test

import (
	"context"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

// runConsumer runs a consumer.Consumer of queue on c that sends each body to
// the returned channel. stop ends it (on purpose) and waits for Run.
func runConsumer(t *testing.T, c *lavinmq.Client, queue string) (got <-chan string, stop func()) {
	t.Helper()
	k, err := consumer.New(c, queue, consumer.WithRetryDelay(50*time.Millisecond, 500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	bodies := make(chan string, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = k.Run(ctx, func(_ context.Context, d consumer.Delivery) consumer.Action {
			bodies <- string(d.Body)
			return consumer.Ack
		})
	}()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return bodies, stop
}

func receive(t *testing.T, got <-chan string, want string) {
	t.Helper()
	select {
	case b := <-got:
		if b != want {
			t.Fatalf("received %q, want %q", b, want)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("%q not received within 15s", want)
	}
}

func publish(t *testing.T, ch *amqp.Channel, exchange, key, body string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ch.PublishWithContext(ctx, exchange, key, false, false, amqp.Publishing{Body: []byte(body)}); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

// consumers returns the broker's consumer count of queue, or -1 when it does not exist.
func consumers(t *testing.T, queue string) int {
	t.Helper()
	conn, err := amqp.Dial(testbroker.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
	if err != nil {
		return -1
	}
	return q.Consumers
}

// TestTopologyServerNamedQueueConsumedAfterReconnect: a consumer.Consumer of
// a server-named queue consumes again after a forced reconnect, from the
// queue's new name: messages published through its replayed binding and
// straight to the new name both arrive.
func TestTopologyServerNamedQueueConsumedAfterReconnect(t *testing.T) {
	c, ev := newClient(t, testbroker.URL(t))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ex := testbroker.Name(t, "ex")
	if err := c.DeclareExchange(ctx, lavinmq.Exchange{Name: ex, Kind: "direct"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.DeleteExchange(context.Background(), ex) })
	res, err := c.DeclareQueue(ctx, lavinmq.Queue{Exclusive: true, AutoDelete: true})
	if err != nil {
		t.Fatal(err)
	}
	first := res.Name
	if err := c.BindQueue(ctx, lavinmq.Binding{Queue: first, Exchange: ex, Key: "k"}); err != nil {
		t.Fatal(err)
	}
	got, stop := runConsumer(t, c, first)
	raw := testbroker.Raw(t)
	publish(t, raw, ex, "k", "before")
	receive(t, got, "before")

	reconnectAfter(t, c, ev, func() { testbroker.CloseAllConnections(t) })
	now := c.QueueName(first)
	if now == first {
		t.Fatalf("the queue kept its name %s across the reconnect", first)
	}
	raw = testbroker.Raw(t) // the old raw connection was closed too
	publish(t, raw, ex, "k", "via-binding")
	receive(t, got, "via-binding")
	publish(t, raw, "", now, "to-new-name")
	receive(t, got, "to-new-name")
	stop()
	t.Logf("server-named queue %s became %s; the consumer received through the binding and by the new name", first, now)
}

// TestTopologyAutoDeleteQueueForgottenAfterConsumerClose: the broker deletes
// an auto-delete queue when its last consumer leaves. When that consumer was
// stopped on purpose, the client forgets the queue and its binding: after a
// reconnect the queue is not declared again (it would fill up with no
// consumer to ever delete it) and the replay reports no error.
func TestTopologyAutoDeleteQueueForgottenAfterConsumerClose(t *testing.T) {
	te := &topoErrors{}
	c, ev := newClient(t, testbroker.URL(t), lavinmq.WithHooks(te))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ex, q := testbroker.Name(t, "ex"), testbroker.Name(t, "q")
	if err := c.DeclareExchange(ctx, lavinmq.Exchange{Name: ex, Kind: "direct"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.DeleteExchange(context.Background(), ex) })
	if _, err := c.DeclareQueue(ctx, lavinmq.Queue{Name: q, AutoDelete: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.DeleteQueue(context.Background(), q) })
	if err := c.BindQueue(ctx, lavinmq.Binding{Queue: q, Exchange: ex, Key: "k"}); err != nil {
		t.Fatal(err)
	}
	got, stop := runConsumer(t, c, q)
	publish(t, testbroker.Raw(t), ex, "k", "m")
	receive(t, got, "m")
	stop()
	testbroker.Eventually(t, 10*time.Second, "the broker deleted the auto-delete queue", func() bool {
		return testbroker.QueueLen(t, q) == -1
	})
	reconnectAfter(t, c, ev, func() { testbroker.CloseAllConnections(t) })
	raw := testbroker.Raw(t)
	for range 100 {
		publish(t, raw, ex, "k", "after")
	}
	time.Sleep(300 * time.Millisecond)
	if n := testbroker.QueueLen(t, q); n != -1 {
		t.Fatalf("the auto-delete queue was declared again after its consumer's Close: %d ready, %d consumers", n, consumers(t, q))
	}
	if errs := te.all(); len(errs) != 0 {
		t.Fatalf("replay reported %d errors (the binding stayed recorded): first %v", len(errs), errs[0])
	}
	t.Logf("after the consumer's Close and a reconnect, 100 messages published to the binding's key: queue %s absent on the broker, 0 replay errors", q)
}

// TestTopologyAutoDeleteQueueBackAfterConnectionLoss: a connection loss is
// not a consumer's stop. The broker deletes the auto-delete queue with the
// consumer's channel, the replay declares it again with its binding, and the
// consumer resubscribes and receives.
func TestTopologyAutoDeleteQueueBackAfterConnectionLoss(t *testing.T) {
	c, ev := newClient(t, testbroker.URL(t))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ex, q := testbroker.Name(t, "ex"), testbroker.Name(t, "q")
	if err := c.DeclareExchange(ctx, lavinmq.Exchange{Name: ex, Kind: "direct"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.DeleteExchange(context.Background(), ex) })
	if _, err := c.DeclareQueue(ctx, lavinmq.Queue{Name: q, AutoDelete: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.DeleteQueue(context.Background(), q) })
	if err := c.BindQueue(ctx, lavinmq.Binding{Queue: q, Exchange: ex, Key: "k"}); err != nil {
		t.Fatal(err)
	}
	got, stop := runConsumer(t, c, q)
	publish(t, testbroker.Raw(t), ex, "k", "before")
	receive(t, got, "before")
	reconnectAfter(t, c, ev, func() { testbroker.CloseAllConnections(t) })
	publish(t, testbroker.Raw(t), ex, "k", "after")
	receive(t, got, "after")
	stop()
	testbroker.Eventually(t, 10*time.Second, "the broker deleted the queue after the consumer stopped", func() bool {
		return testbroker.QueueLen(t, q) == -1
	})
}
