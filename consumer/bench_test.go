package consumer_test

import (
	"context"
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
// queue pre-filled with b.N 16-byte messages.
func BenchmarkConsume(b *testing.B) {
	b.Run("sdk", func(b *testing.B) {
		q := benchQueue(b)
		c, err := lavinmq.New(testbroker.URL(b))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		k, err := consumer.New(c, q, consumer.WithPrefetch(100))
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		n, want := 0, b.N
		errc := make(chan error, 1)
		b.ReportAllocs()
		b.ResetTimer()
		start := time.Now()
		go func() {
			errc <- k.Run(ctx, func(context.Context, consumer.Delivery) consumer.Action {
				// One handler goroutine: n is owned by it.
				if n++; n == want {
					cancel()
				}
				return consumer.Ack
			})
		}()
		<-errc
		b.StopTimer()
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
		if s := k.Stats(); s.Acked != uint64(b.N) {
			b.Fatalf("acked %d of %d", s.Acked, b.N)
		}
	})
	b.Run("raw", func(b *testing.B) {
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
		for n := 0; n < b.N; n++ {
			d := <-dels
			if err := d.Ack(false); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
		_ = ch.Close()
	})
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
