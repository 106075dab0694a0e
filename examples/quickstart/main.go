// Command quickstart declares a queue, publishes ten messages in Confirm
// mode, consumes them and closes: the whole SDK in the fewest lines.
//
//	scripts/broker.sh start && LAVINMQ_URL=$(scripts/broker.sh url) go run ./examples/quickstart
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

func main() {
	url := os.Getenv("LAVINMQ_URL")
	if url == "" {
		url = "amqp://guest:guest@127.0.0.1:5680/"
	}
	if err := run(url, "quickstart", os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(url, queue string, out io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	c, err := lavinmq.New(url) // returns at once; connects (and reconnects) in the background
	if err != nil {
		return err
	}
	defer c.Close()
	// Declared through the client: declared again after every reconnect.
	if _, err := c.DeclareQueue(ctx, lavinmq.Queue{Name: queue, Durable: true}); err != nil {
		return err
	}

	p, err := producer.New(c, queue) // Confirm mode, persistent messages, 10_000-message buffer
	if err != nil {
		return err
	}
	for i := range 10 {
		if err := p.Publish(ctx, producer.Message{Body: fmt.Appendf(nil, "hello %d", i)}); err != nil {
			return err
		}
	}
	if err := p.Close(ctx); err != nil { // flushes: returns once all ten are confirmed
		return err
	}

	k, err := consumer.New(c, queue)
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	var got atomic.Int32
	err = k.Run(runCtx, func(_ context.Context, d consumer.Delivery) consumer.Action {
		fmt.Fprintln(out, "received:", string(d.Body))
		if got.Add(1) == 10 {
			stop()
		}
		return consumer.Ack
	})
	if got.Load() < 10 {
		return fmt.Errorf("received %d of 10: %w", got.Load(), err)
	}
	return nil
}
