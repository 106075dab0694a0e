package tracing_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/c3ecadf2/lavinmq-go/buffer"
	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/producer"
	"github.com/c3ecadf2/lavinmq-go/tracing"
)

// BenchmarkPublishConsume publishes b.N messages of 256 bytes (Confirm mode)
// and consumes them on the same client, with tracing off and on, in the same
// run. On: every message gets a producer and a consumer span, sampled,
// through a batch span processor to an exporter that discards (the cost of
// making and queueing the spans, not of shipping them). Unsampled: the same
// tracer with a provider that samples nothing (the trace context still goes
// in the headers). It reports msgs/s, and the allocations of the whole path
// per message.
func BenchmarkPublishConsume(b *testing.B) {
	b.Run("off", func(b *testing.B) { benchPublishConsume(b, false, true) })
	b.Run("on", func(b *testing.B) { benchPublishConsume(b, true, true) })
	b.Run("unsampled", func(b *testing.B) { benchPublishConsume(b, true, false) })
}

// benchPublishConsume: on adds the tracer; sampled false makes its
// provider sample nothing (the trace context is still propagated).
func benchPublishConsume(b *testing.B, on, sampled bool) {
	q := declareQueue(b)
	c := newClient(b, testbroker.URL(b))
	var hooks []any
	if on {
		sampler := sdktrace.AlwaysSample()
		if !sampled {
			sampler = sdktrace.NeverSample()
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()), sdktrace.WithSampler(sampler))
		b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		tr, err := tracing.New(tracing.WithTracerProvider(tp), tracing.WithPropagator(propagation.TraceContext{}))
		if err != nil {
			b.Fatal(err)
		}
		hooks = append(hooks, tr)
	}
	popts := []producer.Option{producer.WithPolicy(buffer.Block)}
	copts := []consumer.Option{consumer.WithPrefetch(500)}
	if on {
		popts = append(popts, producer.WithHooks(hooks...))
		copts = append(copts, consumer.WithHooks(hooks...))
	}
	p, err := producer.New(c, q, popts...)
	if err != nil {
		b.Fatal(err)
	}
	k, err := consumer.New(c, q, copts...)
	if err != nil {
		b.Fatal(err)
	}
	var got atomic.Int64
	runConsumer(b, k, func(context.Context, consumer.Delivery) consumer.Action {
		got.Add(1)
		return consumer.Ack
	})
	body := make([]byte, 256)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if err := p.Publish(ctx, producer.Message{Body: body}); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for got.Load() < int64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("consumed %d of %d", got.Load(), b.N)
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}
