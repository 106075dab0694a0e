package producer_test

import (
	"context"
	"testing"
	"time"

	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

func TestPublishConfirmAndFireAndForget(t *testing.T) {
	for _, mode := range []producer.Mode{producer.Confirm, producer.FireAndForget} {
		t.Run(mode.String(), func(t *testing.T) {
			c := newClient(t, testbroker.URL(t))
			q := declare(t, nil)
			p := newProducer(t, c, q, producer.WithMode(mode))
			const n = 5000
			for i := range uint64(n) {
				if err := p.Publish(context.Background(), producer.Message{Body: seqBody(i)}); err != nil {
					t.Fatalf("publish %d: %v", i, err)
				}
			}
			flush(t, p, 30*time.Second)
			s := p.Stats()
			checkInvariant(t, s)
			if s.Accepted != n || s.Confirmed != n || s.Dropped != 0 || s.Pending != 0 {
				t.Fatalf("stats after flush: %+v", s)
			}
			r := consumeAll(t, q, n, 300*time.Millisecond, 30*time.Second)
			if len(r.count) != n || r.duplicates() != 0 {
				t.Fatalf("received %d distinct, %d duplicates; want %d, 0", len(r.count), r.duplicates(), n)
			}
			for i, s := range r.order {
				if s != uint64(i) {
					t.Fatalf("message %d arrived at position %d: order broken", s, i)
				}
			}
		})
	}
}
