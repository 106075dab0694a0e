package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	rabbitmq "github.com/wagslane/go-rabbitmq"
)

// goRabbitMQPeer is github.com/wagslane/go-rabbitmq v0.15.0, written the way
// its README and examples show:
//
//   - Connection: rabbitmq.NewConn(url) (README "Quick Start Publisher"); it
//     reconnects by itself every ConnectionOptions.ReconnectInterval (default
//     5 s, connection_options.go), and so do its publishers' and consumers'
//     channels (internal/channelmanager).
//   - Publishing with confirms: NewPublisher(conn, WithPublisherOptionsConfirm)
//     and PublishWithDeferredConfirmWithContext(ctx, body, []string{key},
//     WithPublishOptionsPersistentDelivery), then WaitContext/Acked on the
//     returned confirmation (examples/publisher_confirm/main.go). The library's
//     docs say nothing about retrying: the example logs a failed publish and
//     goes on. A caller that must not lose the message retries it; retryWait
//     sleeps 100 ms before the next try.
//   - Without confirms (implGoRabbitMQPlain): the README's Quick Start
//     Publisher, NewPublisher(conn) and Publish(body, []string{key}), here
//     with WithPublishOptionsPersistentDelivery (the queue is durable; the
//     default, transient, would not survive the crash whatever the library).
//   - Consuming: NewConsumer(conn, queue, WithConsumerOptionsQOSPrefetch(100),
//     WithConsumerOptionsQueueDurable) and Run(handler) returning rabbitmq.Ack
//     (README "Quick Start Consumer"; the queue here is durable, so the
//     consumer declares it durable too).
//
// Its default logger calls log.Fatalf (process exit) when a publisher cannot
// be restarted after a reconnect; the bench logs to stderr instead and counts
// those, so a run reports it rather than dying.
type goRabbitMQPeer struct {
	confirm bool
	conn    *rabbitmq.Conn
	pub     *rabbitmq.Publisher
	q       string
	log     *peerLogger
}

func newGoRabbitMQPeer(url, q string, confirm bool) (*goRabbitMQPeer, error) {
	l := &peerLogger{l: log.New(os.Stderr, "go-rabbitmq ", log.LstdFlags|log.Lmicroseconds)}
	conn, err := rabbitmq.NewConn(url, rabbitmq.WithConnectionOptionsLogger(l))
	if err != nil {
		return nil, err
	}
	opts := []func(*rabbitmq.PublisherOptions){rabbitmq.WithPublisherOptionsLogger(l)}
	if confirm {
		opts = append(opts, rabbitmq.WithPublisherOptionsConfirm)
	}
	pub, err := rabbitmq.NewPublisher(conn, opts...)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	return &goRabbitMQPeer{confirm: confirm, conn: conn, pub: pub, q: q, log: l}, nil
}

func (p *goRabbitMQPeer) publish(ctx context.Context, b []byte) (*amqp.DeferredConfirmation, error) {
	if !p.confirm {
		return nil, p.pub.PublishWithContext(ctx, b, []string{p.q}, rabbitmq.WithPublishOptionsPersistentDelivery)
	}
	confs, err := p.pub.PublishWithDeferredConfirmWithContext(ctx, b, []string{p.q}, rabbitmq.WithPublishOptionsPersistentDelivery)
	if err != nil {
		return nil, err
	}
	if len(confs) == 0 {
		return nil, nil
	}
	return confs[0], nil
}

func (p *goRabbitMQPeer) retryWait(ctx context.Context) { sleepCtx(ctx, 100*time.Millisecond) }

func (p *goRabbitMQPeer) consume(ctx context.Context, n int) error {
	c, err := rabbitmq.NewConsumer(p.conn, p.q, rabbitmq.WithConsumerOptionsQOSPrefetch(100),
		rabbitmq.WithConsumerOptionsQueueDurable, rabbitmq.WithConsumerOptionsLogger(p.log))
	if err != nil {
		return err
	}
	var got atomic.Int64
	done := make(chan struct{})
	runErr := make(chan error, 1)
	go func() { // Run returns when the consumer is closed
		runErr <- c.Run(func(rabbitmq.Delivery) rabbitmq.Action {
			if got.Add(1) == int64(n) {
				close(done)
			}
			return rabbitmq.Ack
		})
	}()
	select {
	case <-done:
	case err = <-runErr:
		err = fmt.Errorf("run ended after %d of %d: %v", got.Load(), n, err)
	case <-ctx.Done():
		err = fmt.Errorf("consumed %d of %d: %w", got.Load(), n, ctx.Err())
	}
	c.Close()
	return err
}

func (p *goRabbitMQPeer) note() string {
	if n := p.log.fatals.Load(); n > 0 {
		return fmt.Sprintf("go-rabbitmq logged %d fatal error(s) (its default logger would have exited the process)", n)
	}
	return ""
}

func (p *goRabbitMQPeer) close() {
	p.pub.Close()
	_ = p.conn.Close()
}

// peerLogger is go-rabbitmq's Logger writing to the worker's stderr; Fatalf
// is counted instead of exiting.
type peerLogger struct {
	l      *log.Logger
	fatals atomic.Int64
}

func (l *peerLogger) Fatalf(f string, v ...any) { l.fatals.Add(1); l.l.Printf("FATAL "+f, v...) }
func (l *peerLogger) Errorf(f string, v ...any) { l.l.Printf("ERROR "+f, v...) }
func (l *peerLogger) Warnf(f string, v ...any)  { l.l.Printf("WARN "+f, v...) }
func (l *peerLogger) Infof(f string, v ...any)  {}
func (l *peerLogger) Debugf(f string, v ...any) {}
