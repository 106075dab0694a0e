package tracing_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/producer"
	"github.com/c3ecadf2/lavinmq-go/tracing"
)

func TestNewRefusesNilOptions(t *testing.T) {
	for name, opts := range map[string][]tracing.Option{
		"nil option":     {nil},
		"nil provider":   {tracing.WithTracerProvider(nil)},
		"nil propagator": {tracing.WithPropagator(nil)},
	} {
		if _, err := tracing.New(opts...); !errors.Is(err, tracing.ErrInvalidConfig) {
			t.Errorf("%s: New returned %v, want ErrInvalidConfig", name, err)
		}
	}
	if tr, err := tracing.New(); err != nil || tr == nil {
		t.Fatalf("New with the globals: %v", err)
	}
	// A Tracer not made by New does nothing (and does not panic).
	var zero tracing.Tracer
	if h := zero.OnMessagePublish(context.Background(), producer.MessagePublishEvent{}, &producer.Message{}); h != nil {
		t.Fatalf("zero Tracer returned handle %v", h)
	}
	if _, end := zero.OnHandle(context.Background(), consumer.HandleEvent{}); end != nil {
		t.Fatal("zero Tracer returned an end")
	}
}

// publishOne runs the producer hook on a message as Publish would and ends it.
func publishOne(t *testing.T, r *recorded, ctx context.Context, ev producer.MessagePublishEvent, m *producer.Message) {
	t.Helper()
	h := r.tr.OnMessagePublish(ctx, ev, m)
	r.tr.OnMessageSettled(h, producer.MessageSettledEvent{Accepted: true})
}

// TestDestinationNames: messaging.destination.name and the span name on both
// sides, per the RabbitMQ conventions.
func TestDestinationNames(t *testing.T) {
	r := newRecorded(t)
	for _, c := range []struct{ exchange, key, want string }{
		{"orders", "created", "orders:created"},
		{"orders", "", "orders"},
		{"", "jobs", "jobs"},
		{"", "", "amq.default"},
	} {
		m := &producer.Message{}
		publishOne(t, r, context.Background(), producer.MessagePublishEvent{Exchange: c.exchange, RoutingKey: c.key}, m)
		s := r.sr.Ended()[len(r.sr.Ended())-1]
		if got := attrs(s)[semconv.MessagingDestinationNameKey].AsString(); got != c.want || s.Name() != "publish "+c.want {
			t.Errorf("send %q/%q: destination %q, span %q, want %q", c.exchange, c.key, got, s.Name(), c.want)
		}
	}
	for _, c := range []struct{ exchange, key, queue, want string }{
		{"orders", "created", "billing", "orders:created:billing"},
		{"", "billing", "billing", "billing"},
		{"orders", "billing", "billing", "orders:billing"},
		{"orders", "", "billing", "orders:billing"},
	} {
		_, end := r.tr.OnHandle(context.Background(), consumer.HandleEvent{Delivery: consumer.Delivery{Exchange: c.exchange, RoutingKey: c.key, Queue: c.queue}})
		end(consumer.Ack, nil)
		s := r.sr.Ended()[len(r.sr.Ended())-1]
		if got := attrs(s)[semconv.MessagingDestinationNameKey].AsString(); got != c.want || s.Name() != "process "+c.want {
			t.Errorf("deliver %q/%q/%q: destination %q, span %q, want %q", c.exchange, c.key, c.queue, got, s.Name(), c.want)
		}
	}
}

// TestHeadersAreCopiedNotWritten: the trace headers go into a copy that
// holds the caller's entries; the caller's table is unchanged, so one table
// may be shared by many messages.
func TestHeadersAreCopiedNotWritten(t *testing.T) {
	r := newRecorded(t)
	shared := amqp.Table{"tenant": "acme", "n": int32(1)}
	ctx, parent := r.tp.Tracer("test").Start(context.Background(), "p")
	defer parent.End()
	var seen []string
	for range 2 {
		m := &producer.Message{Headers: shared}
		publishOne(t, r, ctx, producer.MessagePublishEvent{RoutingKey: "q"}, m)
		tp, _ := m.Headers["traceparent"].(string)
		if tp == "" || m.Headers["tenant"] != "acme" || m.Headers["n"] != int32(1) {
			t.Fatalf("published headers %v", m.Headers)
		}
		seen = append(seen, tp)
	}
	if len(shared) != 2 {
		t.Fatalf("the caller's table was written: %v", shared)
	}
	if seen[0] == seen[1] {
		t.Fatalf("two messages carry the same traceparent %s", seen[0])
	}
	// No headers at all: a new table with the trace context only.
	m := &producer.Message{}
	publishOne(t, r, ctx, producer.MessagePublishEvent{RoutingKey: "q"}, m)
	if _, ok := m.Headers["traceparent"]; !ok || len(m.Headers) != 1 {
		t.Fatalf("headers of a message without any: %v", m.Headers)
	}
}

// TestCustomCreationContextIsKept: a message that already carries a trace
// context keeps it (the conventions' custom creation context); the producer
// span links to it.
func TestCustomCreationContextIsKept(t *testing.T) {
	r := newRecorded(t)
	const custom = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	m := &producer.Message{Headers: amqp.Table{"traceparent": custom}}
	publishOne(t, r, context.Background(), producer.MessagePublishEvent{RoutingKey: "q"}, m)
	if m.Headers["traceparent"] != custom {
		t.Fatalf("traceparent replaced: %v", m.Headers["traceparent"])
	}
	s := r.sr.Ended()[0]
	if l := s.Links(); len(l) != 1 || l[0].SpanContext.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" {
		t.Fatalf("producer span links %v, want the custom context", l)
	}
}

// TestConsumerLinkOnly: with WithConsumerLinkOnly the consumer span starts a
// trace of its own and links to the producer's context; by default it is
// its child.
func TestConsumerLinkOnly(t *testing.T) {
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	d := consumer.Delivery{Queue: "q", RoutingKey: "q", Headers: amqp.Table{"traceparent": tp}}
	for _, linkOnly := range []bool{false, true} {
		var opts []tracing.Option
		if linkOnly {
			opts = append(opts, tracing.WithConsumerLinkOnly())
		}
		r := newRecorded(t, opts...)
		ctx, end := r.tr.OnHandle(context.Background(), consumer.HandleEvent{Delivery: d})
		if !trace.SpanFromContext(ctx).SpanContext().IsValid() {
			t.Fatal("the handler's ctx carries no span")
		}
		end(consumer.Ack, nil)
		s := r.sr.Ended()[0]
		child := s.SpanContext().TraceID().String() == "0af7651916cd43dd8448eb211c80319c" && s.Parent().SpanID().String() == "b7ad6b7169203331"
		if child == linkOnly || len(s.Links()) != 1 {
			t.Fatalf("link only %v: child of the producer %v, links %d", linkOnly, child, len(s.Links()))
		}
	}
}

// TestGlobalPropagatorDefault: without WithPropagator the global one is used,
// which injects nothing until the application sets it.
func TestGlobalPropagatorDefault(t *testing.T) {
	r := newRecorded(t, tracing.WithPropagator(propagation.NewCompositeTextMapPropagator()))
	m := &producer.Message{}
	ctx, parent := r.tp.Tracer("test").Start(context.Background(), "p")
	defer parent.End()
	publishOne(t, r, ctx, producer.MessagePublishEvent{RoutingKey: "q"}, m)
	if m.Headers != nil {
		t.Fatalf("an empty propagator wrote headers: %v", m.Headers)
	}
}

// TestUnsampledPropagatesOnly: with a provider that samples nothing, the
// trace context (its sampled flag off) still goes into the headers and to
// the handler's ctx, no span is recorded, and no handle or end is kept.
func TestUnsampledPropagatesOnly(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr), sdktrace.WithSampler(sdktrace.NeverSample()))
	defer tp.Shutdown(context.Background())
	tr, err := tracing.New(tracing.WithTracerProvider(tp), tracing.WithPropagator(propagation.TraceContext{}))
	if err != nil {
		t.Fatal(err)
	}
	m := &producer.Message{}
	h := tr.OnMessagePublish(context.Background(), producer.MessagePublishEvent{RoutingKey: "q"}, m)
	tp0, _ := m.Headers["traceparent"].(string)
	if h != nil || !strings.HasSuffix(tp0, "-00") {
		t.Fatalf("handle %v, traceparent %q: want no handle and an unsampled context", h, tp0)
	}
	tr.OnMessageSent(h, producer.MessageSentEvent{Connection: 1})
	tr.OnMessageSettled(h, producer.MessageSettledEvent{Accepted: true})
	ctx, end := tr.OnHandle(context.Background(), consumer.HandleEvent{Delivery: consumer.Delivery{Queue: "q", Headers: m.Headers}})
	if end != nil || trace.SpanContextFromContext(ctx).TraceID().String() != strings.Split(tp0, "-")[1] {
		t.Fatalf("end %v, handler ctx %v: want no end and the message's trace", end != nil, trace.SpanContextFromContext(ctx))
	}
	if n := len(sr.Ended()) + len(sr.Started()); n != 0 {
		t.Fatalf("%d spans recorded", n)
	}
}
