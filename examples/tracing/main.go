// Command tracing follows one message through a reconnect with OpenTelemetry
// and prints its spans (the stdout exporter, as JSON): the producer span, from
// Publish until the broker confirmed the message, with its "sent" and
// "re-sent after reconnect" events, and the consumer span of the handler call,
// its child, in the trace of the caller's own span.
//
// The fault is played by a small proxy between the client and the broker: it
// swallows the published message, then cuts the connection; the client
// reconnects by itself and publishes the message again.
//
//	scripts/broker.sh start && LAVINMQ_URL=$(scripts/broker.sh url) go run ./examples/tracing
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"sync"
	"time"

	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/producer"
	"github.com/c3ecadf2/lavinmq-go/tracing"
)

func main() {
	u := os.Getenv("LAVINMQ_URL")
	if u == "" {
		u = "amqp://guest:guest@127.0.0.1:5680/"
	}
	if err := run(u, "lavinmq-go-tracing-example", os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "tracing:", err)
		os.Exit(1)
	}
}

// written is a second producer hook: it tells run when the message has been
// written on a connection, which is when the example cuts it.
type written chan uint64

func (w written) OnMessagePublish(context.Context, producer.MessagePublishEvent, *producer.Message) any {
	return nil
}
func (w written) OnMessageHeadersRefused(any, error)                 {}
func (w written) OnMessageNacked(any, int)                           {}
func (w written) OnMessageSettled(any, producer.MessageSettledEvent) {}
func (w written) OnMessageSent(_ any, ev producer.MessageSentEvent) {
	select {
	case w <- ev.Connection:
	default:
	}
}

func run(brokerURL, queue string, out io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// The stdout exporter prints each span as it ends; only the spans of the
	// example's trace are printed.
	exp, err := stdouttrace.New(stdouttrace.WithWriter(out), stdouttrace.WithPrettyPrint())
	if err != nil {
		return err
	}
	keep := &traceFilter{next: exp}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(keep))
	defer tp.Shutdown(context.Background())
	tr, err := tracing.New(tracing.WithTracerProvider(tp), tracing.WithPropagator(propagation.TraceContext{}))
	if err != nil {
		return err
	}

	u, err := url.Parse(brokerURL)
	if err != nil {
		return err
	}
	px, err := newCutProxy(u.Host)
	if err != nil {
		return err
	}
	defer px.Close()
	u.Host = px.Addr()
	c, err := lavinmq.New(u.String(), lavinmq.WithReconnectDelay(100*time.Millisecond, time.Second))
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.DeclareQueue(ctx, lavinmq.Queue{Name: queue, Durable: true}); err != nil {
		return err
	}
	sent := make(written, 8)
	p, err := producer.New(c, queue, producer.WithHooks(tr, sent))
	if err != nil {
		return err
	}
	// A first message, outside the example's trace, opens the channel.
	if err := p.PublishSync(ctx, producer.Message{Body: []byte("warm-up")}); err != nil {
		return err
	}
	<-sent

	// The caller's own span: the message's spans are in its trace.
	tctx, checkout := tp.Tracer("example").Start(ctx, "checkout")
	keep.only(checkout.SpanContext().TraceID())
	px.Swallow() // the publish will never reach the broker
	if err := p.Publish(tctx, producer.Message{Body: []byte("order 1001"), MessageID: "order-1001", CorrelationID: "cart-77"}); err != nil {
		return err
	}
	select {
	case gen := <-sent:
		fmt.Fprintf(out, "# order-1001 written on connection %d (and swallowed); cutting the connection\n", gen)
	case <-ctx.Done():
		return ctx.Err()
	}
	px.Cut()
	if err := p.Flush(ctx); err != nil {
		return err
	}
	checkout.End()
	fmt.Fprintf(out, "# order-1001 confirmed after %d re-send(s)\n", p.Stats().Resent)

	k, err := consumer.New(c, queue, consumer.WithHooks(tr))
	if err != nil {
		return err
	}
	handled := make(chan struct{})
	kctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() {
		done <- k.Run(kctx, func(ctx context.Context, d consumer.Delivery) consumer.Action {
			if d.MessageID == "order-1001" {
				_, span := tp.Tracer("example").Start(ctx, "store order") // nests under the consumer span
				span.End()
				defer close(handled)
			}
			return consumer.Ack
		})
	}()
	select {
	case <-handled:
	case <-ctx.Done():
		return ctx.Err()
	}
	stop()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	if err := p.Close(ctx); err != nil {
		return err
	}
	_, err = c.DeleteQueue(ctx, queue)
	return err
}

// traceFilter passes on the spans of one trace only.
type traceFilter struct {
	next  sdktrace.SpanExporter
	mu    sync.Mutex
	trace trace.TraceID
}

func (f *traceFilter) only(id trace.TraceID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.trace = id
}

func (f *traceFilter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	f.mu.Lock()
	id := f.trace
	f.mu.Unlock()
	var keep []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.SpanContext().TraceID() == id {
			keep = append(keep, s)
		}
	}
	if len(keep) == 0 {
		return nil
	}
	return f.next.ExportSpans(ctx, keep)
}

func (f *traceFilter) Shutdown(ctx context.Context) error { return f.next.Shutdown(ctx) }
