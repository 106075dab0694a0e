// Command metrics serves Prometheus metrics on 127.0.0.1 while it publishes
// and consumes, with the drop callback and every hook wired:
//
//	scripts/broker.sh start && LAVINMQ_URL=$(scripts/broker.sh url) go run ./examples/metrics
//	curl -s 127.0.0.1:9464/metrics | grep ^lavinmq_
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/metrics"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

func main() {
	url := flag.String("url", envOr("LAVINMQ_URL", "amqp://guest:guest@127.0.0.1:5680/"), "broker URL")
	addr := flag.String("addr", "127.0.0.1:9464", "listen address for /metrics")
	duration := flag.Duration("duration", time.Minute, "how long to run")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "metrics:", err)
		os.Exit(1)
	}
	fmt.Printf("serving http://%s/metrics for %v\n", ln.Addr(), *duration)
	if err := run(ctx, *url, "lavinmq-go-metrics-example", ln, prometheus.NewRegistry()); err != nil {
		fmt.Fprintln(os.Stderr, "metrics:", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// clientName names the example's client (see lavinmq.WithConnectionName).
const clientName = "lavinmq-go-metrics-example"

// run publishes about 200 messages a second to queue and consumes them,
// serving reg's metrics on ln, until ctx ends.
func run(ctx context.Context, url, queue string, ln net.Listener, reg *prometheus.Registry) error {
	m, err := metrics.New(reg)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// The connection name is the "client" label of the client_* series: one
	// Metrics value tells the clients of a process apart by it.
	c, err := lavinmq.New(url, lavinmq.WithConnectionName(clientName), lavinmq.WithHooks(m), lavinmq.WithLogger(log), lavinmq.WithHeartbeat(time.Second))
	if err != nil {
		return err
	}
	defer c.Close()
	// The drop callback is a plain function: here it logs; the metrics
	// package counts drops by reason through its hook.
	p, err := producer.New(c, queue, producer.WithDeclare(nil), producer.WithHooks(m), producer.WithLogger(log),
		producer.OnDrop(func(msg producer.Message, queue string, r producer.DropReason) {
			log.Warn("message dropped", "queue", queue, "id", msg.MessageID, "reason", r.String())
		}))
	if err != nil {
		return err
	}
	k, err := consumer.New(c, queue, consumer.WithDeclare(nil), consumer.WithHooks(m), consumer.WithLogger(log))
	if err != nil {
		return err
	}

	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	consumed := make(chan error, 1)
	go func() {
		consumed <- k.Run(ctx, func(_ context.Context, d consumer.Delivery) consumer.Action {
			if !d.Redelivered && len(d.Body) > 0 && d.Body[len(d.Body)-1] == '0' {
				return consumer.NackRequeue // one in ten goes round once, to show nacks
			}
			return consumer.Ack
		})
	}()

	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ctx.Err() == nil; i++ {
		select {
		case <-tick.C:
			if err := p.Publish(ctx, producer.Message{Body: fmt.Appendf(nil, "message %d", i)}); err != nil && ctx.Err() == nil {
				log.Warn("publish", "err", err)
			}
		case <-ctx.Done():
		}
	}

	closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	errs := []error{p.Close(closeCtx)}
	if err := <-consumed; !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		errs = append(errs, err)
	}
	errs = append(errs, srv.Shutdown(closeCtx))
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
