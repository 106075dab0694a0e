package producer_test

import (
	"context"
	"fmt"
	"time"

	"github.com/c3ecadf2/lavinmq-go/buffer"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

func ExampleNew() {
	c, err := lavinmq.New("amqp://guest:guest@127.0.0.1:5672/")
	if err != nil {
		panic(err)
	}
	defer c.Close()
	p, err := producer.New(c, "orders",
		producer.WithMode(producer.Confirm),    // at-least-once (the default)
		producer.WithPolicy(buffer.DropOldest), // a full buffer evicts the oldest message
		producer.WithBufferSize(10_000),
		producer.OnDrop(func(m producer.Message, queue string, r producer.DropReason) {
			fmt.Printf("dropped %s from %s: %s\n", m.MessageID, queue, r)
		}))
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	_ = p.Publish(ctx, producer.Message{Body: []byte(`{"id":42}`), ContentType: "application/json"})
	_ = p.Close(ctx) // waits until everything is confirmed or reported
}

// The broker is unreachable here, so messages stay in the buffer: the third
// Publish evicts the oldest, and Close reports the rest.
func ExampleOnDrop() {
	c, _ := lavinmq.New("amqp://guest:guest@127.0.0.1:1/")
	defer c.Close()
	p, _ := producer.New(c, "orders", producer.WithBufferSize(2),
		producer.OnDrop(func(m producer.Message, queue string, r producer.DropReason) {
			fmt.Printf("dropped %s from %s: %s\n", m.Body, queue, r)
		}))
	for _, body := range []string{"a", "b", "c"} {
		_ = p.Publish(context.Background(), producer.Message{Body: []byte(body)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_ = p.Close(ctx)
	s := p.Stats()
	fmt.Printf("accepted=%d confirmed=%d dropped=%d pending=%d\n", s.Accepted, s.Confirmed, s.Dropped, s.Pending)
	// Output:
	// dropped a from orders: evicted
	// dropped b from orders: shutdown
	// dropped c from orders: shutdown
	// accepted=3 confirmed=0 dropped=3 pending=0
}

func ExampleProducer_Publish_raise() {
	c, _ := lavinmq.New("amqp://guest:guest@127.0.0.1:1/")
	defer c.Close()
	p, _ := producer.New(c, "orders", producer.WithBufferSize(1), producer.WithPolicy(buffer.Raise))
	defer func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = p.Close(ctx)
	}()
	fmt.Println(p.Publish(context.Background(), producer.Message{Body: []byte("a")}))
	fmt.Println(p.Publish(context.Background(), producer.Message{Body: []byte("b")}))
	// Output:
	// <nil>
	// buffer: full
}

// Stats is a snapshot of the counters; Accepted == Confirmed + Dropped +
// Pending always holds. Here the broker is unreachable, so everything
// accepted is pending (buffered): what a crash of the process would lose.
func ExampleProducer_Stats() {
	c, _ := lavinmq.New("amqp://guest:guest@127.0.0.1:1/")
	defer c.Close()
	p, _ := producer.New(c, "orders", producer.WithBufferSize(100))
	for range 3 {
		_ = p.Publish(context.Background(), producer.Message{Body: []byte("x")})
	}
	s := p.Stats()
	fmt.Printf("accepted=%d confirmed=%d dropped=%d pending=%d buffered=%d capacity=%d\n",
		s.Accepted, s.Confirmed, s.Dropped, s.Pending, s.Buffered, s.Capacity)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = p.Close(ctx) // gives up at once: the three are reported with reason shutdown
	s = p.Stats()
	fmt.Printf("after Close: dropped=%d (shutdown %d) pending=%d\n", s.Dropped, s.DroppedBy[producer.Shutdown], s.Pending)
	// Output:
	// accepted=3 confirmed=0 dropped=0 pending=3 buffered=3 capacity=100
	// after Close: dropped=3 (shutdown 3) pending=0
}
