package consumer_test

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

// TestCloseCancelsHandlerCtxAndRunReturns: three handlers that wait on their
// ctx; Close(1s) cancels it when its bound ends, and Run returns right after,
// with the goroutines back to where they were.
func TestCloseCancelsHandlerCtxAndRunReturns(t *testing.T) {
	q := rawQueue(t)
	c := newClient(t, testbroker.URL(t))
	before := runtime.NumGoroutine()
	k, err := consumer.New(c, q, consumer.WithConcurrency(3), consumer.WithPrefetch(3))
	if err != nil {
		t.Fatal(err)
	}
	var started, cancelled atomic.Int64
	runErr := make(chan error, 1)
	go func() {
		runErr <- k.Run(context.Background(), func(ctx context.Context, _ consumer.Delivery) consumer.Action {
			started.Add(1)
			<-ctx.Done()
			cancelled.Add(1)
			return consumer.NackRequeue
		})
	}()
	publish(t, q, bodies("m", 3)...)
	testbroker.Eventually(t, 10*time.Second, "three handlers running", func() bool { return started.Load() == 3 })

	const bound = time.Second
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	t0 := time.Now()
	cerr := k.Close(ctx)
	closeTook := time.Since(t0)
	var runTook time.Duration
	select {
	case err := <-runErr:
		runTook = time.Since(t0)
		if err != nil {
			t.Fatalf("Run after Close = %v, want nil", err)
		}
	case <-time.After(bound + 5*time.Second):
		t.Fatalf("Run still blocked %v after Close(%v); handlers cancelled: %d", bound+5*time.Second, bound, cancelled.Load())
	}
	if !errors.Is(cerr, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want context.DeadlineExceeded (the handlers ignore nothing but their ctx)", cerr)
	}
	if cancelled.Load() != 3 {
		t.Fatalf("%d handlers saw their ctx cancelled, want 3", cancelled.Load())
	}
	// Generous: the point is "right after Close's bound", not "8 s later".
	if runTook > bound+2*time.Second {
		t.Fatalf("Run returned %v after Close(%v) began", runTook, bound)
	}
	testbroker.Eventually(t, 5*time.Second, "goroutines back to where they were", func() bool { return runtime.NumGoroutine() <= before })
	t.Logf("Close(%v) returned after %v (%v), Run after %v; goroutines %d before, %d after",
		bound, closeTook, cerr, runTook, before, runtime.NumGoroutine())
}

// TestCloseHandsBackUnstartedDeliveries: prefetch 20, one slow handler; at
// Close the 19 deliveries no handler started go back to the queue at once and
// another consumer gets them while the slow handler still runs.
func TestCloseHandsBackUnstartedDeliveries(t *testing.T) {
	q := rawQueue(t)
	c := newClient(t, testbroker.URL(t))
	k, err := consumer.New(c, q, consumer.WithPrefetch(20), consumer.WithConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var started atomic.Int64
	runErr := make(chan error, 1)
	go func() {
		runErr <- k.Run(context.Background(), func(context.Context, consumer.Delivery) consumer.Action {
			started.Add(1)
			<-release // slow: until the test has seen the others reach another consumer
			return consumer.Ack
		})
	}()
	publish(t, q, bodies("m", 20)...)
	testbroker.Eventually(t, 10*time.Second, "the slow handler to start", func() bool { return started.Load() == 1 })
	testbroker.Eventually(t, 10*time.Second, "all 20 prefetched", func() bool { return testbroker.QueueLen(t, q) == 0 })

	other := testbroker.Raw(t)
	if err := other.Qos(50, 0, false); err != nil {
		t.Fatal(err)
	}
	ds, err := other.Consume(q, "other", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	closeDone := make(chan error, 1)
	t0 := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		closeDone <- k.Close(ctx)
	}()
	var first time.Duration
	got := 0
	timeout := time.After(10 * time.Second)
	for got < 19 {
		select {
		case d := <-ds:
			if got == 0 {
				first = time.Since(t0)
			}
			got++
			_ = d.Ack(false)
		case <-timeout:
			t.Fatalf("another consumer got %d of the 19 unstarted deliveries within 10s of Close (slow handler still running)", got)
		}
	}
	all := time.Since(t0)
	close(release)
	if err := <-closeDone; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-runErr; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if s := k.Stats(); s.HandedBack != 19 || s.Acked != 1 {
		t.Fatalf("stats %+v: want 19 handed back and 1 acked", s)
	}
	// The issue asks for 200 ms; the bound here is generous for a loaded
	// machine, the figure is logged.
	if first > 2*time.Second {
		t.Fatalf("first unstarted delivery reached another consumer %v after Close", first)
	}
	t.Logf("after Close: first of 19 handed-back deliveries at another consumer after %v, all 19 after %v (slow handler still running)", first, all)
}

// TestHandlerCtxCancelledOnForcedClose: a handler waiting on its ctx is
// stopped when the broker closes its connection (its ack could not be sent).
func TestHandlerCtxCancelledOnForcedClose(t *testing.T) {
	q := rawQueue(t)
	c := newClient(t, testbroker.URL(t))
	k, err := consumer.New(c, q)
	if err != nil {
		t.Fatal(err)
	}
	var started, cancelled atomic.Int64
	run(t, k, func(ctx context.Context, d consumer.Delivery) consumer.Action {
		if started.Add(1) > 1 {
			return consumer.Ack // the redelivery after the reconnect
		}
		select {
		case <-ctx.Done():
			cancelled.Add(1)
		case <-time.After(30 * time.Second):
		}
		return consumer.Ack
	})
	publish(t, q, "m")
	testbroker.Eventually(t, 10*time.Second, "the handler to start", func() bool { return started.Load() == 1 })
	t0 := time.Now()
	testbroker.CloseAllConnections(t)
	testbroker.Eventually(t, 10*time.Second, "the handler's ctx to be cancelled by the forced close", func() bool { return cancelled.Load() == 1 })
	took := time.Since(t0)
	testbroker.Eventually(t, 15*time.Second, "the redelivery after the reconnect", func() bool { return started.Load() >= 2 })
	t.Logf("handler ctx cancelled %v after close_all_connections; stats %+v", took, k.Stats())
}

// TestDeclareInequivalentQueueIsRunError: WithDeclare against an existing
// queue with other properties (here non-durable with a TTL): Run returns the
// broker's 406 as an error instead of retrying for ever.
func TestDeclareInequivalentQueueIsRunError(t *testing.T) {
	q := testbroker.Name(t, "ttl")
	if _, err := testbroker.Raw(t).QueueDeclare(q, false, false, false, false, amqp.Table{"x-message-ttl": int32(60000)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteQueue(t, q) })
	c := newClient(t, testbroker.URL(t))
	k, err := consumer.New(c, q, consumer.WithDeclare(nil), consumer.WithRetryDelay(10*time.Millisecond, 50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = k.Run(ctx, ack)
	var ae *amqp.Error
	if !errors.Is(err, consumer.ErrDeclare) || !errors.As(err, &ae) || ae.Code != amqp.PreconditionFailed {
		t.Fatalf("Run = %v, want ErrDeclare wrapping the 406", err)
	}
	if _, recorded := c.RecordedQueue(q); recorded {
		t.Fatal("the refused declaration was recorded on the client")
	}
	t.Logf("Run: %v", err)
}

// TestDeclareKeepsApplicationDeclaration: the application declared the queue
// (non-durable, a TTL) and its binding through the client; WithDeclare uses
// that declaration, and after the queue is deleted and the connection lost
// it comes back with its TTL and its binding.
func TestDeclareKeepsApplicationDeclaration(t *testing.T) {
	q := testbroker.Name(t, "app")
	x := testbroker.Name(t, "x")
	t.Cleanup(func() {
		deleteQueue(t, q)
		_ = testbroker.Raw(t).ExchangeDelete(x, false, false)
	})
	args := amqp.Table{"x-message-ttl": int32(60000)}
	c := newClient(t, testbroker.URL(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.DeclareExchange(ctx, lavinmq.Exchange{Name: x, Kind: "direct"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeclareQueue(ctx, lavinmq.Queue{Name: q, Args: args}); err != nil {
		t.Fatal(err)
	}
	if err := c.BindQueue(ctx, lavinmq.Binding{Queue: q, Exchange: x, Key: "k"}); err != nil {
		t.Fatal(err)
	}
	k, err := consumer.New(c, q, consumer.WithDeclare(nil), consumer.WithRetryDelay(10*time.Millisecond, 100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	var got received
	run(t, k, func(_ context.Context, d consumer.Delivery) consumer.Action { got.add(d); return consumer.Ack })
	publish(t, q, "before")
	testbroker.Eventually(t, 10*time.Second, "a first delivery", func() bool { return got.has("before") })

	if _, err := testbroker.Raw(t).QueueDelete(q, false, false, false); err != nil {
		t.Fatal(err)
	}
	testbroker.Eventually(t, 10*time.Second, "resubscribe after the delete", func() bool { return k.Stats().Resubscribes >= 1 })
	testbroker.CloseAllConnections(t)
	testbroker.Eventually(t, 15*time.Second, "resubscribe after the reconnect", func() bool { return k.Stats().Resubscribes >= 2 })

	if rec, ok := c.RecordedQueue(q); !ok || rec.Durable || rec.Args["x-message-ttl"] != int32(60000) {
		t.Fatalf("the client's record of %s is %+v (recorded %v), want the application's", q, rec, ok)
	}
	// Declaring exactly the application's queue succeeds only if the broker
	// has it with the same properties (else 406).
	if _, err := testbroker.Raw(t).QueueDeclare(q, false, false, false, false, args); err != nil {
		t.Fatalf("the queue came back with other properties: %v", err)
	}
	// The binding came back: a message through the exchange arrives.
	raw := testbroker.Raw(t)
	if err := raw.PublishWithContext(ctx, x, "k", false, false, amqp.Publishing{Body: []byte("via-binding")}); err != nil {
		t.Fatal(err)
	}
	testbroker.Eventually(t, 10*time.Second, "a message through the replayed binding", func() bool { return got.has("via-binding") })
}
