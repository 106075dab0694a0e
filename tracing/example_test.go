package tracing_test

import (
	"context"
	"log"

	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/producer"
	"github.com/c3ecadf2/lavinmq-go/tracing"
)

// One Tracer for the producers and consumers of a process: every message
// gets a producer span from Publish until it settles, and every handler call
// a consumer span, its child; the handler's own spans nest under it.
func ExampleNew() {
	exp, err := stdouttrace.New()
	if err != nil {
		log.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp))
	defer tp.Shutdown(context.Background())
	t, err := tracing.New(tracing.WithTracerProvider(tp), tracing.WithPropagator(propagation.TraceContext{}))
	if err != nil {
		log.Fatal(err)
	}

	c, err := lavinmq.New("amqp://guest:guest@127.0.0.1:5672/")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	p, err := producer.New(c, "orders", producer.WithHooks(t))
	if err != nil {
		log.Fatal(err)
	}
	ctx, span := tp.Tracer("shop").Start(context.Background(), "checkout")
	_ = p.Publish(ctx, producer.Message{Body: []byte("order 1001")}) // a child of "checkout"
	span.End()

	k, err := consumer.New(c, "orders", consumer.WithHooks(t))
	if err != nil {
		log.Fatal(err)
	}
	_ = k.Run(context.Background(), func(ctx context.Context, d consumer.Delivery) consumer.Action {
		_, work := tp.Tracer("shop").Start(ctx, "store order") // a child of the consumer span
		defer work.End()
		return consumer.Ack
	})
}
