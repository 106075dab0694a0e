// Command consumer runs a consumer with 4 handler goroutines and prefetch 20
// over 200 messages, one of which makes the handler panic the first time it
// is seen: the panic is recovered, the message redelivered and then acked.
//
//	scripts/broker.sh start && LAVINMQ_URL=$(scripts/broker.sh url) go run ./examples/consumer
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
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
	if err := run(url, "lavinmq-go-consumer-example", 200, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "consumer:", err)
		os.Exit(1)
	}
}

func run(url, queue string, n int, out io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := lavinmq.New(url, lavinmq.WithLogger(log))
	if err != nil {
		return err
	}
	defer c.Close()

	p, err := producer.New(c, queue, producer.WithDeclare(nil))
	if err != nil {
		return err
	}
	for i := range n {
		m := producer.Message{Body: fmt.Appendf(nil, "job %d", i)}
		if i == n/2 {
			m.Headers = map[string]any{"poison": true}
		}
		if err := p.Publish(ctx, m); err != nil {
			return err
		}
	}
	if err := p.Close(ctx); err != nil {
		return err
	}

	k, err := consumer.New(c, queue,
		consumer.WithDeclare(nil),
		consumer.WithConcurrency(4), // four handlers at once
		consumer.WithPrefetch(20),   // at most 20 unacked deliveries on the wire
		consumer.WithLogger(log),    // the recovered panic is logged with its stack
	)
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	var done atomic.Int64
	err = k.Run(runCtx, func(ctx context.Context, d consumer.Delivery) consumer.Action {
		if d.Headers["poison"] == true && !d.Redelivered {
			panic("cannot handle " + string(d.Body))
		}
		time.Sleep(time.Millisecond) // some work
		if done.Add(1) == int64(n) {
			stop()
		}
		return consumer.Ack
	})
	s := k.Stats()
	fmt.Fprintf(out, "handled=%d delivered=%d acked=%d requeued=%d panics=%d\n", done.Load(), s.Delivered, s.Acked, s.NackedRequeue, s.Panics)
	if done.Load() != int64(n) {
		return fmt.Errorf("handled %d of %d: %w", done.Load(), n, err)
	}
	return nil
}
