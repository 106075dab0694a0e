package producer

import (
	"context"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

// BenchmarkPublishEnqueue measures Publish alone: validate and push into the
// ring. The client never connects, and the benchmark empties the ring (timer
// stopped) every 4096 messages so every push finds room.
func BenchmarkPublishEnqueue(b *testing.B) {
	benchEnqueue(b, Message{Body: make([]byte, 16), ContentType: "application/octet-stream"}, false)
}

// BenchmarkPublishEnqueueKey is BenchmarkPublishEnqueue with a per-message
// routing key, on an exchange producer.
func BenchmarkPublishEnqueueKey(b *testing.B) {
	benchEnqueue(b, Message{Body: make([]byte, 16), ContentType: "application/octet-stream", RoutingKey: "order.paid.eu"}, false, WithExchange("events", "order"))
}

// TestPublishDoesNotAllocate: Publish of a message without headers costs no
// allocation, with or without a per-message routing key.
func TestPublishDoesNotAllocate(t *testing.T) {
	for _, m := range []Message{
		{Body: make([]byte, 16), ContentType: "application/octet-stream"},
		{Body: make([]byte, 16), RoutingKey: "order.paid.eu"},
	} {
		p := offlineProducer(t, 8192, WithExchange("events", "order"))
		ctx := context.Background()
		if n := testing.AllocsPerRun(1000, func() { _ = p.Publish(ctx, m) }); n != 0 {
			t.Fatalf("Publish (routing key %q) allocates %.1f times per call, want 0", m.RoutingKey, n)
		}
	}
}

// BenchmarkPublishEnqueueFull measures Publish on a full ring with
// DropOldest: every call evicts the oldest message (counted, no callback).
func BenchmarkPublishEnqueueFull(b *testing.B) {
	p := offlineProducer(b, 1024)
	ctx := context.Background()
	m := Message{Body: make([]byte, 16)}
	for range 1024 {
		_ = p.Publish(ctx, m)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := p.Publish(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
}

// offlineProducer returns a producer whose client never connects; both are
// closed when the benchmark ends.
func offlineProducer(b testing.TB, size int, opts ...Option) *Producer {
	c, err := lavinmq.New("amqp://guest:guest@127.0.0.1:1/", lavinmq.WithReconnectDelay(time.Second, time.Second))
	if err != nil {
		b.Fatal(err)
	}
	p, err := New(c, "bench", append([]Option{WithBufferSize(size)}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = p.Close(ctx)
		c.Close()
	})
	return p
}

// BenchmarkPublishEnqueueHeaders is BenchmarkPublishEnqueue with three
// headers, which Publish validates (walks) on every call.
func BenchmarkPublishEnqueueHeaders(b *testing.B) {
	benchEnqueue(b, Message{Body: make([]byte, 16), Headers: amqp.Table{"tenant": "acme", "attempt": int32(1), "trace": []byte("0123456789abcdef")}}, false)
}

// BenchmarkPublishEnqueueCopy1KiB measures what copying the body in Publish
// would cost: the same Publish of a 1 KiB body, without and with a copy.
func BenchmarkPublishEnqueueCopy1KiB(b *testing.B) {
	m := Message{Body: make([]byte, 1024)}
	b.Run("zero-copy", func(b *testing.B) { benchEnqueue(b, m, false) })
	b.Run("copy", func(b *testing.B) { benchEnqueue(b, m, true) })
}

func benchEnqueue(b *testing.B, m Message, copyBody bool, opts ...Option) {
	p := offlineProducer(b, 8192, opts...)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if copyBody {
			m.Body = append([]byte(nil), m.Body...)
		}
		if err := p.Publish(ctx, m); err != nil {
			b.Fatal(err)
		}
		if i&4095 == 4095 {
			b.StopTimer()
			for {
				env, ok := p.ring.TryPop()
				if !ok {
					break
				}
				p.bud.release(env.size) // as a settle does
			}
			b.StartTimer()
		}
	}
}
