package consumer_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

// BenchmarkConsume compares end-to-end consume throughput (prefetch 100,
// manual ack of every message) of this consumer with a plain amqp091-go
// consume-and-ack loop, on the same broker in the same run. Each runs on a
// queue pre-filled with b.N 16-byte messages. sdk uses the defaults (acks
// coalesced, WithAckBatch); sdk-ack-each acks each delivery on its own
// (WithAckBatch(1, 0)); raw acks each with Ack(false); raw-multiple-25 acks
// every 25th with multiple=true, what a hand-written loop can do at best with
// one handler.
func BenchmarkConsume(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts []consumer.Option
	}{
		{"sdk", nil},
		{"sdk-ack-each", []consumer.Option{consumer.WithAckBatch(1, 0)}},
		{"sdk-batch-50", []consumer.Option{consumer.WithAckBatch(50, consumer.DefaultAckDelay)}},
		{"sdk-concurrency-8", []consumer.Option{consumer.WithConcurrency(8)}},
	} {
		b.Run(bc.name, func(b *testing.B) { benchSDK(b, bc.opts...) })
	}
	b.Run("raw", func(b *testing.B) { benchRaw(b, 1) })
	b.Run("raw-multiple-25", func(b *testing.B) { benchRaw(b, 25) })
}

func benchSDK(b *testing.B, opts ...consumer.Option) {
	q := benchQueue(b)
	c, err := lavinmq.New(testbroker.URL(b))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	k, err := consumer.New(c, q, append([]consumer.Option{consumer.WithPrefetch(100)}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var n atomic.Int64
	want := int64(b.N)
	errc := make(chan error, 1)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	go func() {
		errc <- k.Run(ctx, func(context.Context, consumer.Delivery) consumer.Action {
			if n.Add(1) == want {
				cancel()
			}
			return consumer.Ack
		})
	}()
	<-errc
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
	s := k.Stats()
	if s.Acked != uint64(b.N) {
		b.Fatalf("acked %d of %d", s.Acked, b.N)
	}
	b.ReportMetric(float64(s.Acked)/float64(max(s.AckFrames, 1)), "acks/frame")
}

// benchRaw consumes with amqp091-go alone, acking every nth delivery with
// multiple=true (n = 1: each with multiple=false).
func benchRaw(b *testing.B, every int) {
	q := benchQueue(b)
	conn, err := amqp.Dial(testbroker.URL(b))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	if err := ch.Qos(100, 0, false); err != nil {
		b.Fatal(err)
	}
	dels, err := ch.Consume(q, "", false, false, false, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	for n := 1; n <= b.N; n++ {
		d := <-dels
		if n%every == 0 || n == b.N {
			if err := d.Ack(every > 1); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
	_ = ch.Close()
}

// benchQueue declares a queue holding b.N 16-byte messages; it is deleted at the end.
func benchQueue(b *testing.B) string {
	b.Helper()
	q := testbroker.Name(b, "bench")
	conn, err := amqp.Dial(testbroker.URL(b))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := ch.QueueDeclare(q, false, false, false, false, nil); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if conn, err := amqp.Dial(testbroker.URL(b)); err == nil {
			if ch, err := conn.Channel(); err == nil {
				_, _ = ch.QueueDelete(q, false, false, false)
			}
			conn.Close()
		}
	})
	if err := ch.Confirm(false); err != nil {
		b.Fatal(err)
	}
	body := []byte("0123456789abcdef")
	ctx := context.Background()
	var last *amqp.DeferredConfirmation
	for range b.N {
		if last, err = ch.PublishWithDeferredConfirmWithContext(ctx, "", q, false, false, amqp.Publishing{Body: body}); err != nil {
			b.Fatal(err)
		}
	}
	if last != nil {
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		if ok, err := last.WaitContext(wctx); !ok || err != nil {
			b.Fatalf("pre-fill not confirmed: %v", err)
		}
	}
	testbroker.Eventually(b, 30*time.Second, "pre-filled queue", func() bool { return testbroker.QueueLen(b, q) == b.N })
	return q
}
