package producer_test

import (
	"context"
	"testing"
	"time"

	"github.com/c3ecadf2/lavinmq-go/buffer"
	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

// BenchmarkCork compares the producer with write coalescing (the default)
// and without, in the same run, and the confirm window with corked writes:
//
//	LAVINMQ_TEST_URL=... go test -run '^$' -bench Cork -benchtime 100000x -count 3 ./producer/
func BenchmarkCork(b *testing.B) {
	body := make([]byte, 16)
	for _, bc := range []struct {
		name string
		mode producer.Mode
		cork bool
		opts []producer.Option
	}{
		{"fire_and_forget/corked", producer.FireAndForget, true, nil},
		{"fire_and_forget/off", producer.FireAndForget, false, nil},
		{"confirm/corked", producer.Confirm, true, nil},
		{"confirm/off", producer.Confirm, false, nil},
		{"confirm/corked-window-5000", producer.Confirm, true, []producer.Option{producer.WithMaxInFlight(5000)}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			q := declare(b, nil)
			c := newClient(b, testbroker.URL(b), lavinmq.WithWriteCoalescing(bc.cork))
			opts := append([]producer.Option{producer.WithMode(bc.mode), producer.WithBufferSize(65536), producer.WithPolicy(buffer.Block)}, bc.opts...)
			p := newProducer(b, c, q, opts...)
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
			fctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			defer cancel()
			if err := p.Flush(fctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
			if s := p.Stats(); s.Confirmed != uint64(b.N) {
				b.Fatalf("confirmed %d of %d: %+v", s.Confirmed, b.N, s)
			}
		})
	}
}
