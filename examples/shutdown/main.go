// Command shutdown is a service that publishes order events to a topic
// exchange, each with its own routing key, until it receives SIGTERM (or
// SIGINT), and then shuts down cleanly: it stops publishing and calls
// Close(ctx), which flushes every accepted message to the broker before it
// returns. A process that exits without Close loses what the producer holds
// in memory (accepted, not yet confirmed: Stats().Pending), silently.
//
//	scripts/broker.sh start && LAVINMQ_URL=$(scripts/broker.sh url) go run ./examples/shutdown
//	(then press Ctrl-C, or kill -TERM the process)
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/c3ecadf2/lavinmq-go/buffer"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

// keys are the routing keys the service publishes with, in turn.
var keys = []string{"order.created", "order.paid.eu", "order.paid.us", "order.shipped"}

func main() {
	url := os.Getenv("LAVINMQ_URL")
	if url == "" {
		url = "amqp://guest:guest@127.0.0.1:5680/"
	}
	exchange, queue := envOr("SHUTDOWN_EXCHANGE", "orders"), envOr("SHUTDOWN_QUEUE", "orders.audit")
	// ctx ends at the first SIGTERM or SIGINT (a second one kills at once).
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, url, exchange, queue, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "shutdown:", err)
		os.Exit(1)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// run publishes until ctx ends, then closes the producer with a 10s bound
// and the client.
func run(ctx context.Context, url, exchange, queue string, out io.Writer) error {
	c, err := lavinmq.New(url)
	if err != nil {
		return err
	}
	defer c.Close()
	setup, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// A topic exchange and a queue that takes every order event; declared
	// through the client, so they come back after a reconnect.
	if err := c.DeclareExchange(setup, lavinmq.Exchange{Name: exchange, Kind: "topic", Durable: true}); err != nil {
		return err
	}
	if _, err := c.DeclareQueue(setup, lavinmq.Queue{Name: queue, Durable: true}); err != nil {
		return err
	}
	if err := c.BindQueue(setup, lavinmq.Binding{Queue: queue, Exchange: exchange, Key: "order.#"}); err != nil {
		return err
	}

	p, err := producer.New(c, queue,
		producer.WithExchange(exchange, "order.unknown"), // each message names its own key
		producer.WithPolicy(buffer.Block),                // a full buffer slows the loop down
		producer.OnDrop(func(m producer.Message, _ string, r producer.DropReason) {
			fmt.Fprintf(out, "dropped %s (%s): %s\n", m.MessageID, m.RoutingKey, r)
		}))
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "publishing; send SIGTERM to stop")
	for i := 0; ; i++ {
		err := p.Publish(ctx, producer.Message{
			RoutingKey:  keys[i%len(keys)],
			ContentType: "application/json",
			Body:        fmt.Appendf(nil, `{"order":%d}`, i),
		})
		if err != nil {
			if errors.Is(err, context.Canceled) {
				break // the signal: shut down
			}
			return err
		}
		if i%100 == 99 {
			time.Sleep(time.Millisecond) // a steady stream, not a flood
		}
	}

	// What a crash at this instant would lose: accepted, not yet confirmed.
	s := p.Stats()
	fmt.Fprintf(out, "signal received: %d accepted, %d pending (lost if the process died now); flushing\n", s.Accepted, s.Pending)
	closeCtx, cancelClose := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelClose()
	err = p.Close(closeCtx) // waits until every accepted message is confirmed (or reports the rest)
	s = p.Stats()
	fmt.Fprintf(out, "closed: accepted=%d confirmed=%d dropped=%d pending=%d\n", s.Accepted, s.Confirmed, s.Dropped, s.Pending)
	return err
}
