package lavinmq_test

import (
	"context"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

// TestTopologyLockedQueueRetriedUntilFree: the replay of an exclusive queue
// that another connection holds is refused with 405 RESOURCE_LOCKED (after a
// half-open loss that connection is our own dead one). The client goes into
// service anyway, reports each refusal to HookTopologyError and retries the
// queue, then its binding, with backoff; once the holder lets go, the retry
// declares the queue on the client's connection, with its binding, and the
// consumer.Consumer of the queue receives again.
func TestTopologyLockedQueueRetriedUntilFree(t *testing.T) {
	te := &topoErrors{}
	p := testbroker.NewProxy(t)
	c, _ := newClient(t, p.URL, lavinmq.WithHooks(te), lavinmq.WithReconnectDelay(50*time.Millisecond, time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ex, q := testbroker.Name(t, "ex"), testbroker.Name(t, "q")
	if err := c.DeclareExchange(ctx, lavinmq.Exchange{Name: ex, Kind: "direct"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.DeleteExchange(context.Background(), ex) })
	if _, err := c.DeclareQueue(ctx, lavinmq.Queue{Name: q, Exclusive: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.BindQueue(ctx, lavinmq.Binding{Queue: q, Exchange: ex, Key: "k"}); err != nil {
		t.Fatal(err)
	}
	got, stop := runConsumer(t, c, q)
	publish(t, onClientChannel(t, c), ex, "k", "before")
	receive(t, got, "before")
	gen := clientConn(t, c).Generation()

	// Cut the client off; the broker drops its connection and the queue, and
	// another connection takes the name before the client is back.
	p.Disable()
	holder, err := amqp.Dial(testbroker.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	testbroker.Eventually(t, 10*time.Second, "the holder declares the exclusive queue", func() bool {
		ch, err := holder.Channel()
		if err != nil {
			t.Fatalf("holder channel: %v", err)
		}
		if _, err := ch.QueueDeclare(q, false, false, true, false, nil); err != nil {
			return false // 405 until the broker has dropped the client's queue
		}
		return true
	})
	p.Enable()
	testbroker.Eventually(t, 20*time.Second, "the client back in service while the queue is locked", func() bool {
		return c.Connected() && clientConn(t, c).Generation() > gen
	})
	testbroker.Eventually(t, 10*time.Second, "405 reported for the queue", func() bool {
		return te.count(q, amqp.ResourceLocked) >= 1
	})
	time.Sleep(time.Second) // retries go on while the holder keeps the queue
	held := te.count(q, amqp.ResourceLocked)
	if held < 2 {
		t.Fatalf("%d refusals reported in the second after the first: the step is not retried", held)
	}
	if !c.Connected() {
		t.Fatal("the locked queue took the client out of service")
	}
	released := time.Now()
	if err := holder.Close(); err != nil {
		t.Fatal(err)
	}
	// Only the retry's queue has the binding: the first message the consumer
	// (which retried its subscribe meanwhile) receives through the exchange
	// proves both.
	raw := testbroker.Raw(t)
	var took time.Duration
	for i := 0; took == 0; i++ {
		if time.Since(released) > 20*time.Second {
			t.Fatal("no message through the binding within 20s of the holder's close: the queue was not declared again")
		}
		publish(t, raw, ex, "k", "after-retry")
		select {
		case b := <-got:
			if b != "after-retry" {
				t.Fatalf("received %q", b)
			}
			took = time.Since(released)
		case <-time.After(200 * time.Millisecond):
		}
	}
	// And the queue is the client's: a passive declare from another
	// connection would get 405.
	if _, err := onClientChannel(t, c).QueueDeclarePassive(q, false, false, true, false, nil); err != nil {
		t.Fatalf("queue not owned by the client's connection: %v", err)
	}
	stop()
	total := te.count(q, amqp.ResourceLocked)
	if rest := len(te.all()) - total; rest != 0 {
		t.Fatalf("%d topology errors other than the queue's 405: %v", rest, te.all())
	}
	t.Logf("405 refusals of the queue reported: %d while held (first second), %d in all; consumed through its binding %v after the holder closed",
		held, total, took.Round(time.Millisecond))
}

// TestTopologyServerNamedQueueRenamedAfterReconnect: a queue declared with
// Name "" is recorded; the replay gets a new name from the broker, QueueName
// returns it, and the binding made on the first name follows it.
func TestTopologyServerNamedQueueRenamedAfterReconnect(t *testing.T) {
	te := &topoErrors{}
	c, ev := newClient(t, testbroker.URL(t), lavinmq.WithHooks(te))
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
	if first == "" || c.QueueName(first) != first {
		t.Fatalf("server-named queue %q, QueueName %q", first, c.QueueName(first))
	}
	if err := c.BindQueue(ctx, lavinmq.Binding{Queue: first, Exchange: ex, Key: "k"}); err != nil {
		t.Fatal(err)
	}
	names := []string{first}
	for range 2 {
		reconnectAfter(t, c, ev, func() { testbroker.CloseAllConnections(t) })
		now := c.QueueName(first)
		if now == names[len(names)-1] || now == "" {
			t.Fatalf("QueueName after the reconnect = %q, want a new server name", now)
		}
		names = append(names, now)
		ch := onClientChannel(t, c)
		if !routed(t, ch, ex, "k", now, nil, "via-binding") {
			t.Fatalf("the binding on %s did not follow the queue to %s", first, now)
		}
		if c.QueueName(now) != now {
			t.Fatalf("QueueName(current name) = %q, want %q", c.QueueName(now), now)
		}
	}
	if errs := te.all(); len(errs) != 0 {
		t.Fatalf("replays reported %d errors: first %v", len(errs), errs[0])
	}
	// Deleting it by its first name forgets it: no queue after the next reconnect.
	last := names[len(names)-1]
	if _, err := c.DeleteQueue(ctx, first); err != nil {
		t.Fatal(err)
	}
	reconnectAfter(t, c, ev, func() { testbroker.CloseAllConnections(t) })
	if got := c.QueueName(first); got != first {
		t.Fatalf("QueueName of a deleted queue = %q, want the name unchanged", got)
	}
	t.Logf("server-named queue across reconnects: %v (deleted as %s)", names, last)
}

// TestTopologyServerNamedQueueThatSurvivedKeepsItsName: a server-named queue
// that is not exclusive survives a connection loss on the broker, with its
// messages; the replay keeps its name instead of declaring a new queue next
// to it. Deleted behind the client's back, it gets a new name at the next
// replay.
func TestTopologyServerNamedQueueThatSurvivedKeepsItsName(t *testing.T) {
	te := &topoErrors{}
	c, ev := newClient(t, testbroker.URL(t), lavinmq.WithHooks(te))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := c.DeclareQueue(ctx, lavinmq.Queue{})
	if err != nil {
		t.Fatal(err)
	}
	first := res.Name
	t.Cleanup(func() { c.DeleteQueue(context.Background(), first) })
	raw := testbroker.Raw(t)
	publish(t, raw, "", first, "kept")
	reconnectAfter(t, c, ev, func() { testbroker.CloseAllConnections(t) })
	if got := c.QueueName(first); got != first {
		t.Fatalf("QueueName after the reconnect = %q, want %q: a new queue was declared next to the surviving one", got, first)
	}
	if n := testbroker.QueueLen(t, first); n != 1 {
		t.Fatalf("surviving queue holds %d messages, want 1", n)
	}
	raw = testbroker.Raw(t)
	if _, err := raw.QueueDelete(first, false, false, false); err != nil {
		t.Fatal(err)
	}
	reconnectAfter(t, c, ev, func() { testbroker.CloseAllConnections(t) })
	now := c.QueueName(first)
	if now == first || testbroker.QueueLen(t, now) != 0 {
		t.Fatalf("after its deletion the queue is %q (len %d), want a new empty queue", now, testbroker.QueueLen(t, now))
	}
	if errs := te.all(); len(errs) != 0 {
		t.Fatalf("replays reported %d errors: first %v", len(errs), errs[0])
	}
	t.Logf("server-named queue %s kept its name across a reconnect (1 message kept); deleted, it became %s", first, now)
}
