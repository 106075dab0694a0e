// Command failover gives the client several broker URLs and prints which one
// it is connected to as it moves between them. Against the 3-node cluster:
//
//	scripts/cluster.sh start
//	go run ./examples/failover -urls "$(scripts/cluster.sh urls | paste -sd,)"
//	scripts/cluster.sh stop-node 1     # in another terminal: watch it move
//
// With the defaults it tries a dead address first and moves on to the local broker.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

func main() {
	urls := flag.String("urls", "amqp://guest:guest@127.0.0.1:5999/,"+envOr("LAVINMQ_URL", "amqp://guest:guest@127.0.0.1:5680/"),
		"comma-separated broker URLs, tried in turn")
	duration := flag.Duration("duration", 20*time.Second, "how long to run")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()
	if err := run(ctx, strings.Split(*urls, ","), "lavinmq-go-failover-example", os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "failover:", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// printer is a hook: the client calls it on every connect and loss.
type printer struct{ out io.Writer }

func (p printer) OnConnected(ev lavinmq.ConnectedEvent) {
	fmt.Fprintf(p.out, "connected to %s after %d attempt(s), down %v\n", ev.Endpoint, ev.Attempts, ev.Downtime.Round(time.Millisecond))
}

func (p printer) OnDisconnected(ev lavinmq.DisconnectedEvent) {
	fmt.Fprintf(p.out, "lost %s (detected by %s)\n", ev.Endpoint, ev.DetectedBy)
}

func (p printer) OnReconnectAttempt(ev lavinmq.ReconnectAttemptEvent) {
	fmt.Fprintf(p.out, "  %s unreachable, next try in %v\n", ev.Endpoint, ev.Delay.Round(time.Millisecond))
}

// run declares a quorum queue (replicated on the nodes of a cluster, so it
// outlives the node that fails; a single RabbitMQ node makes a one-member
// quorum queue, and LavinMQ a durable queue) and publishes to it until ctx
// ends, printing one status line a second.
func run(ctx context.Context, urls []string, queue string, out io.Writer) error {
	c, err := lavinmq.New(urls[0], lavinmq.WithFailover(urls[1:]...), lavinmq.WithHooks(printer{out}),
		lavinmq.WithHeartbeat(time.Second), lavinmq.WithDialTimeout(time.Second))
	if err != nil {
		return err
	}
	defer c.Close()
	p, err := producer.New(c, queue, producer.WithDeclare(amqp.Table{"x-queue-type": "quorum"}), producer.WithRetryBudget(100))
	if err != nil {
		return err
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	sec := time.NewTicker(time.Second)
	defer sec.Stop()
	for i := 0; ctx.Err() == nil; {
		select {
		case <-tick.C:
			if err := p.Publish(ctx, producer.Message{Body: fmt.Appendf(nil, "%d", i)}); err == nil {
				i++
			}
		case <-sec.C:
			s := p.Stats()
			fmt.Fprintf(out, "accepted=%d confirmed=%d pending=%d connected=%v\n", s.Accepted, s.Confirmed, s.Pending, c.Connected())
		case <-ctx.Done():
		}
	}
	closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return p.Close(closeCtx)
}
