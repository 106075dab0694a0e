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

// TestCloseReturnsWithinCtxWhenBrokerStopsReading: a broker that stops
// reading the socket (what RabbitMQ does to a blocked connection; here a
// toxiproxy that swallows everything the client sends, while the broker's
// heartbeats still arrive) never answers channel.close. Close with a 1s ctx
// must still return within about 1s, with an error, every unconfirmed
// message reported with reason shutdown before it returns.
func TestCloseReturnsWithinCtxWhenBrokerStopsReading(t *testing.T) {
	const before, during = 10, 20
	px := testbroker.NewProxy(t)
	c := newClient(t, px.URL, lavinmq.WithHeartbeat(10*time.Second))
	q := declare(t, nil)
	drops := newDropLog()
	p := newProducer(t, c, q, producer.OnDrop(drops.fn))
	ctx := context.Background()
	for i := range uint64(before) {
		if err := p.Publish(ctx, producer.Message{Body: seqBody(i)}); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, p, 10*time.Second)

	px.AddToxic("swallow", "timeout", "upstream", map[string]any{"timeout": 0})
	defer px.RemoveToxic("swallow")
	for i := range uint64(during) {
		if err := p.Publish(ctx, producer.Message{Body: seqBody(before + i)}); err != nil {
			t.Fatal(err)
		}
	}
	testbroker.Eventually(t, 5*time.Second, "the messages written and unconfirmed", func() bool {
		return p.Stats().InFlight == during
	})

	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	t0 := time.Now()
	err := p.Close(cctx)
	took := time.Since(t0)
	s := p.Stats()
	t.Logf("Close with a 1s ctx took %v: %v; stats %+v", took, err, s)
	if took > 3*time.Second {
		t.Fatalf("Close with a 1s ctx took %v on a connection the broker does not read", took)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close dropped messages and returned %v, want an error wrapping the ctx's", err)
	}
	checkInvariant(t, s)
	if s.Pending != 0 || s.Confirmed != before || s.DroppedBy[producer.Shutdown] != during || drops.count(producer.Shutdown) != during {
		t.Fatalf("after Close: stats %+v, OnDrop shutdown %d; want %d confirmed, %d dropped with reason shutdown, none pending",
			s, drops.count(producer.Shutdown), before, during)
	}
	if err := p.Publish(ctx, producer.Message{Body: seqBody(0)}); !errors.Is(err, producer.ErrClosed) {
		t.Fatalf("Publish after Close: %v, want ErrClosed", err)
	}
}

// TestCloseReturnsWithinCtxDuringStalledWrite: the publisher is inside a
// socket write that cannot finish (16 MiB of messages through a 1 KB/s
// link, the way a burst meets a blocked broker). Close with a 1s ctx must not
// wait for that write: it returns within about 1s and reports every
// unconfirmed message, the one being written included, with reason shutdown.
// The publisher goroutine ends when the client's Close closes the connection.
func TestCloseReturnsWithinCtxDuringStalledWrite(t *testing.T) {
	const n = 32
	px := testbroker.NewProxy(t)
	c := newClient(t, px.URL)
	q := declare(t, nil)
	drops := newDropLog()
	p := newProducer(t, c, q, producer.OnDrop(drops.fn))
	waitCtx, cancelWait := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelWait()
	if err := c.WaitConnected(waitCtx); err != nil {
		t.Fatal(err)
	}
	px.AddToxic("slow", "bandwidth", "upstream", map[string]any{"rate": 1})
	defer px.RemoveToxic("slow")
	body := make([]byte, 512<<10)
	for range n {
		if err := p.Publish(context.Background(), producer.Message{Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second) // the publisher fills the socket buffers and stalls in a write

	cctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	t0 := time.Now()
	err := p.Close(cctx)
	took := time.Since(t0)
	s := p.Stats()
	t.Logf("Close with a 1s ctx took %v: %v; stats %+v", took, err, s)
	if took > 3*time.Second {
		t.Fatalf("Close with a 1s ctx took %v while the publisher was stalled in a write", took)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close dropped messages and returned %v, want an error wrapping the ctx's", err)
	}
	checkInvariant(t, s)
	if s.Pending != 0 || s.Confirmed+s.DroppedBy[producer.Shutdown] != n || int(s.DroppedBy[producer.Shutdown]) != drops.count(producer.Shutdown) || s.DroppedBy[producer.Shutdown] == 0 {
		t.Fatalf("after Close: stats %+v, OnDrop shutdown %d; want all %d confirmed or dropped with reason shutdown", s, drops.count(producer.Shutdown), n)
	}
}
