package producer_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

// TestClientCloseSettlesEveryMessage: 1 000 messages published, then only
// the client's Close: when it returns, every message is confirmed or was
// reported through OnDrop; none is left pending.
func TestClientCloseSettlesEveryMessage(t *testing.T) {
	c, err := lavinmq.New(testbroker.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	q := declare(t, nil)
	drops := newDropLog()
	p, err := producer.New(c, q, producer.OnDrop(drops.fn))
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	for i := range uint64(n) {
		if err := p.Publish(context.Background(), producer.Message{Body: seqBody(i)}); err != nil {
			t.Fatal(err)
		}
	}
	err = c.Close()
	s := p.Stats()
	t.Logf("client Close: %v; producer stats %+v", err, s)
	checkInvariant(t, s)
	if s.Pending != 0 || s.Confirmed+s.Dropped != n || uint64(drops.total()) != s.Dropped {
		t.Fatalf("after the client's Close: %+v, OnDrop calls %d", s, drops.total())
	}
	if (err == nil) != (s.DroppedBy[producer.Shutdown] == 0) {
		t.Fatalf("Close = %v with %d shutdown drops", err, s.DroppedBy[producer.Shutdown])
	}
	if got := testbroker.QueueLen(t, q); uint64(got) < s.Confirmed {
		t.Fatalf("queue holds %d, fewer than the %d confirmed", got, s.Confirmed)
	}
	if err := p.Publish(context.Background(), producer.Message{}); !errors.Is(err, producer.ErrClosed) {
		t.Fatalf("Publish after the client closed = %v, want ErrClosed", err)
	}
}

// TestClientCloseContextReportsDrops: a client that never connected, closed
// with a short ctx, drops what its producer holds with reason shutdown and
// says so in its error.
func TestClientCloseContextReportsDrops(t *testing.T) {
	c, err := lavinmq.New(nowhere)
	if err != nil {
		t.Fatal(err)
	}
	drops := newDropLog()
	p, err := producer.New(c, "q", producer.OnDrop(drops.fn))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := p.Publish(context.Background(), producer.Message{}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = c.CloseContext(ctx)
	took := time.Since(start)
	if !errors.Is(err, producer.ErrDropped) || drops.count(producer.Shutdown) != 3 {
		t.Fatalf("CloseContext = %v after %v, shutdown drops %d; want ErrDropped and 3", err, took, drops.count(producer.Shutdown))
	}
	if took > 5*time.Second {
		t.Fatalf("CloseContext with a 200ms ctx took %v", took)
	}
	if _, err := producer.New(c, "q2"); !errors.Is(err, producer.ErrClosed) {
		t.Fatalf("New on a closed client = %v, want ErrClosed", err)
	}
}
