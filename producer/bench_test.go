package producer_test

import (
	"context"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/buffer"
	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

// End-to-end publish benchmarks against the local broker, each with the
// plain amqp091-go loop a user would otherwise write, in the same run:
//
//	LAVINMQ_TEST_URL=$(scripts/broker.sh url) go test -run '^$' -bench E2E -benchtime 50000x -count 3 ./producer/
//
// Every sub-benchmark publishes b.N 16-byte messages to a fresh durable
// queue and stops the clock when all are confirmed (Confirm) or written
// (FireAndForget). Confirm-mode messages are persistent in both.

const window = producer.DefaultMaxInFlight

func BenchmarkE2E(b *testing.B) {
	body := make([]byte, 16)
	b.Run("fire_and_forget/sdk", func(b *testing.B) { benchSDK(b, producer.FireAndForget, body) })
	b.Run("fire_and_forget/raw", func(b *testing.B) {
		benchRaw(b, func(ch *amqp.Channel, q string) {
			for range b.N {
				if err := ch.Publish("", q, false, false, amqp.Publishing{Body: body, DeliveryMode: amqp.Transient}); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("confirm/sdk", func(b *testing.B) { benchSDK(b, producer.Confirm, body) })
	b.Run("confirm/sdk-nomandatory", func(b *testing.B) { benchSDK(b, producer.Confirm, body, producer.WithMandatory(false)) })
	b.Run("confirm/raw-window", func(b *testing.B) { benchRaw(b, func(ch *amqp.Channel, q string) { rawWindow(b, ch, q, body) }) })
	b.Run("confirm/raw-sync", func(b *testing.B) {
		benchRaw(b, func(ch *amqp.Channel, q string) {
			if err := ch.Confirm(false); err != nil {
				b.Fatal(err)
			}
			for range b.N {
				dc, err := ch.PublishWithDeferredConfirm("", q, false, false, amqp.Publishing{Body: body, DeliveryMode: amqp.Persistent})
				if err != nil {
					b.Fatal(err)
				}
				if !dc.Wait() {
					b.Fatal("nack")
				}
			}
		})
	})
}

func benchSDK(b *testing.B, mode producer.Mode, body []byte, opts ...producer.Option) {
	benchSDKClient(b, nil, mode, body, opts...)
}

// benchSDKClient is benchSDK on a client made with copts.
func benchSDKClient(b *testing.B, copts []lavinmq.Option, mode producer.Mode, body []byte, opts ...producer.Option) {
	q := declare(b, nil)
	c := newClient(b, testbroker.URL(b), copts...)
	p := newProducer(b, c, q, append([]producer.Option{producer.WithMode(mode), producer.WithBufferSize(65536), producer.WithPolicy(buffer.Block)}, opts...)...)
	ctx := context.Background()
	if err := c.WaitConnected(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := p.Publish(ctx, producer.Message{Body: body}); err != nil {
			b.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
	if s := p.Stats(); s.Confirmed != uint64(b.N) {
		b.Fatalf("confirmed %d of %d: %+v", s.Confirmed, b.N, s)
	}
}

func benchRaw(b *testing.B, loop func(ch *amqp.Channel, q string)) {
	q := declare(b, nil)
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
	loop(ch, q)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
}

// BenchmarkE2ELarge is the payload sweep's 256 KiB row as a go test
// benchmark, for pprof (-cpuprofile, -memprofile): Confirm mode, Block, a
// newly allocated body per message (the producer does not copy, so a
// caller cannot reuse one), against the raw amqp091-go window reusing one
// buffer (amqp091-go copies it to the socket before Publish returns).
//
//	LAVINMQ_TEST_URL=$(scripts/broker.sh url) go test -run '^$' -bench E2ELarge -benchtime 2000x ./producer/
func BenchmarkE2ELarge(b *testing.B) {
	const size = 256 << 10
	// sdk: the default byte budget; sdk-256MiB: a budget as large as the raw
	// window's 1 000 messages, to see what the budget costs in throughput.
	b.Run("confirm/sdk", func(b *testing.B) { benchLarge(b, size) })
	b.Run("confirm/sdk-256MiB", func(b *testing.B) { benchLarge(b, size, producer.WithBufferBytes(window*size)) })
	b.Run("confirm/raw-window", func(b *testing.B) {
		body := make([]byte, size)
		benchRaw(b, func(ch *amqp.Channel, q string) { rawWindow(b, ch, q, body) })
	})
}

// rawWindow is the raw amqp091-go Confirm loop the SDK is measured against:
// b.N persistent publishes with up to window of them unconfirmed.
func rawWindow(b *testing.B, ch *amqp.Channel, q string, body []byte) {
	if err := ch.Confirm(false); err != nil {
		b.Fatal(err)
	}
	pending := make([]*amqp.DeferredConfirmation, 0, window)
	for range b.N {
		if len(pending) == window {
			if !pending[0].Wait() {
				b.Fatal("nack")
			}
			pending = pending[1:]
		}
		dc, err := ch.PublishWithDeferredConfirm("", q, false, false, amqp.Publishing{Body: body, DeliveryMode: amqp.Persistent})
		if err != nil {
			b.Fatal(err)
		}
		pending = append(pending, dc)
	}
	for _, dc := range pending {
		if !dc.Wait() {
			b.Fatal("nack")
		}
	}
}

func benchLarge(b *testing.B, size int, opts ...producer.Option) {
	q := declare(b, nil)
	c := newClient(b, testbroker.URL(b))
	p := newProducer(b, c, q, append([]producer.Option{producer.WithPolicy(buffer.Block)}, opts...)...)
	ctx := context.Background()
	if err := c.WaitConnected(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := p.Publish(ctx, producer.Message{Body: make([]byte, size)}); err != nil {
			b.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
}
