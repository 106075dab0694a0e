package producer_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

// These examples run against the broker of the tests (LAVINMQ_TEST_URL, set
// by `make test`); without it they fail, like every integration test.

// brokerURL is where the examples connect: the test broker, else a local one.
func brokerURL() string {
	if u := os.Getenv("LAVINMQ_TEST_URL"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672/"
}

// Flush waits until every message accepted before it is confirmed by the
// broker (or dropped and reported), here three messages to a queue.
func ExampleProducer_Flush() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := lavinmq.New(brokerURL())
	if err != nil {
		panic(err)
	}
	defer c.Close()
	const queue = "lavinmq-go-example-flush"
	if _, err := c.DeclareQueue(ctx, lavinmq.Queue{Name: queue, Durable: true}); err != nil {
		fmt.Println(err)
		return
	}
	defer c.DeleteQueue(ctx, queue)
	p, _ := producer.New(c, queue)
	for _, body := range []string{"a", "b", "c"} {
		_ = p.Publish(ctx, producer.Message{Body: []byte(body)})
	}
	if err := p.Flush(ctx); err != nil {
		fmt.Println("flush:", err) // says how many are pending and why
		return
	}
	s := p.Stats()
	fmt.Printf("confirmed=%d pending=%d\n", s.Confirmed, s.Pending)
	_ = p.Close(ctx)
	// Output:
	// confirmed=3 pending=0
}

// Close stops accepting messages, waits until everything accepted has
// settled (or ctx ends, reporting the rest with reason shutdown), and ends
// the producer's goroutine. Call it on shutdown: what the producer holds
// lives only in the process's memory.
func ExampleProducer_Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := lavinmq.New(brokerURL())
	if err != nil {
		panic(err)
	}
	defer c.Close()
	const queue = "lavinmq-go-example-close"
	if _, err := c.DeclareQueue(ctx, lavinmq.Queue{Name: queue, Durable: true}); err != nil {
		fmt.Println(err)
		return
	}
	defer c.DeleteQueue(ctx, queue)
	p, _ := producer.New(c, queue)
	_ = p.Publish(ctx, producer.Message{Body: []byte("last words")})

	fmt.Println("close:", p.Close(ctx)) // nil: nothing had to be dropped
	s := p.Stats()
	fmt.Printf("confirmed=%d dropped=%d\n", s.Confirmed, s.Dropped)
	fmt.Println("publish after close:", p.Publish(ctx, producer.Message{Body: []byte("too late")}))
	// Output:
	// close: <nil>
	// confirmed=1 dropped=0
	// publish after close: producer: closed
}

// One producer publishes to a topic exchange, each message with its own
// routing key. A key no queue is bound to is reported as unroutable, with
// the key.
func ExampleWithExchange() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := lavinmq.New(brokerURL())
	if err != nil {
		panic(err)
	}
	defer c.Close()
	const exchange, queue = "lavinmq-go-example-events", "lavinmq-go-example-orders"
	err = errors.Join(
		c.DeclareExchange(ctx, lavinmq.Exchange{Name: exchange, Kind: "topic", Durable: true}),
		func() error { _, err := c.DeclareQueue(ctx, lavinmq.Queue{Name: queue, Durable: true}); return err }(),
		c.BindQueue(ctx, lavinmq.Binding{Queue: queue, Exchange: exchange, Key: "order.#"}))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.DeleteExchange(ctx, exchange)
	defer c.DeleteQueue(ctx, queue)

	p, _ := producer.New(c, queue,
		producer.WithExchange(exchange, "order.created"), // the key of messages without one
		producer.OnDrop(func(m producer.Message, _ string, r producer.DropReason) {
			fmt.Printf("dropped %s: %s\n", m.RoutingKey, r)
		}))
	_ = p.Publish(ctx, producer.Message{Body: []byte(`{"id":1}`)})
	_ = p.Publish(ctx, producer.Message{Body: []byte(`{"id":1}`), RoutingKey: "order.paid.eu"})
	_ = p.Publish(ctx, producer.Message{Body: []byte(`{"id":1}`), RoutingKey: "invoice.sent"})
	_ = p.Flush(ctx)
	s := p.Stats()
	fmt.Printf("confirmed=%d unroutable=%d\n", s.Confirmed, s.DroppedBy[producer.Unroutable])
	_ = p.Close(ctx)
	// Output:
	// dropped invoice.sent: unroutable
	// confirmed=2 unroutable=1
}

// PublishSync waits for one message's outcome: nil once the broker confirmed
// it, or an error that says why it was dropped.
func ExampleProducer_PublishSync() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := lavinmq.New(brokerURL())
	if err != nil {
		panic(err)
	}
	defer c.Close()
	const exchange, queue = "lavinmq-go-example-sync", "lavinmq-go-example-sync-orders"
	err = errors.Join(
		c.DeclareExchange(ctx, lavinmq.Exchange{Name: exchange, Kind: "topic", Durable: true}),
		func() error { _, err := c.DeclareQueue(ctx, lavinmq.Queue{Name: queue, Durable: true}); return err }(),
		c.BindQueue(ctx, lavinmq.Binding{Queue: queue, Exchange: exchange, Key: "order.*"}))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.DeleteExchange(ctx, exchange)
	defer c.DeleteQueue(ctx, queue)
	p, _ := producer.New(c, queue, producer.WithExchange(exchange, "order.created"))
	defer p.Close(ctx)

	fmt.Println(p.PublishSync(ctx, producer.Message{Body: []byte(`{"id":7}`)}))
	err = p.PublishSync(ctx, producer.Message{Body: []byte(`{"id":7}`), RoutingKey: "nobody.listens", MessageID: "order-7"})
	fmt.Println(err)
	fmt.Println(errors.Is(err, producer.Unroutable), errors.Is(err, producer.ErrDropped))
	// Output:
	// <nil>
	// producer: message order-7 dropped: unroutable (routing key "nobody.listens")
	// true true
}

// counters is a hook value: it implements the hook interfaces it wants.
type counters struct{ confirmed, dropped atomic.Int64 }

func (h *counters) OnConfirmed(queue string, latency time.Duration) { h.confirmed.Add(1) }
func (h *counters) OnDropped(queue string, r producer.DropReason)   { h.dropped.Add(1) }

// Hooks see every confirm and drop (package metrics turns them into
// Prometheus series). They run on the producer's goroutine, never on the
// connection's, and must return quickly.
func ExampleWithHooks() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := lavinmq.New(brokerURL())
	if err != nil {
		panic(err)
	}
	defer c.Close()
	const queue = "lavinmq-go-example-hooks"
	if _, err := c.DeclareQueue(ctx, lavinmq.Queue{Name: queue, Durable: true}); err != nil {
		fmt.Println(err)
		return
	}
	defer c.DeleteQueue(ctx, queue)
	h := &counters{}
	p, _ := producer.New(c, queue, producer.WithHooks(h))
	for range 5 {
		_ = p.Publish(ctx, producer.Message{Body: []byte("x")})
	}
	_ = p.Flush(ctx) // hooks of settled messages have run when Flush returns
	fmt.Printf("confirmed=%d dropped=%d\n", h.confirmed.Load(), h.dropped.Load())
	_ = p.Close(ctx)
	// Output:
	// confirmed=5 dropped=0
}
