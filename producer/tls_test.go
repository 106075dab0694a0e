package producer_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

// TestConfirmedPublishAndConsumeOverTLS: over amqps with the right CA and a
// client certificate, every published message is confirmed by the broker and a
// consumer on another TLS client receives every message.
func TestConfirmedPublishAndConsumeOverTLS(t *testing.T) {
	q := declare(t, nil)
	pc := newClient(t, testbroker.TLSURL(t), lavinmq.WithTLS(testbroker.TLSConfig(t, "ca.pem", "client")))
	p := newProducer(t, pc, q, producer.WithMode(producer.Confirm))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 50
	for i := range n {
		if err := p.Publish(ctx, producer.Message{Body: fmt.Appendf(nil, "tls-%d", i)}); err != nil {
			t.Fatalf("Publish %d: %v", i, err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatalf("Flush over TLS: %v", err)
	}
	if s := p.Stats(); s.Confirmed != n {
		t.Fatalf("stats %+v, want %d confirmed", s, n)
	}

	cc := newClient(t, testbroker.TLSURL(t), lavinmq.WithTLS(testbroker.TLSConfig(t, "ca.pem", "")))
	k, err := consumer.New(cc, q)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := map[string]bool{}
	done := make(chan struct{})
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	errc := make(chan error, 1)
	go func() {
		errc <- k.Run(rctx, func(_ context.Context, d consumer.Delivery) consumer.Action {
			mu.Lock()
			defer mu.Unlock()
			if !got[string(d.Body)] {
				got[string(d.Body)] = true
				if len(got) == n {
					close(done)
				}
			}
			return consumer.Ack
		})
	}()
	select {
	case <-done:
	case err := <-errc:
		t.Fatalf("Run ended early: %v", err)
	case <-ctx.Done():
		t.Fatalf("consumed only part of %d messages over TLS", n)
	}
	rcancel()
	<-errc
	mu.Lock()
	defer mu.Unlock()
	for i := range n {
		if !got[fmt.Sprintf("tls-%d", i)] {
			t.Fatalf("message tls-%d not consumed", i)
		}
	}
	t.Logf("%d messages confirmed and consumed over amqps (mTLS publisher, one-way TLS consumer)", n)
}
