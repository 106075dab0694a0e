//go:build chaos

package chaos

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

// TestChaosPublishSyncWhileBlocked: with a memory alarm, RabbitMQ sends
// connection.blocked (once the connection publishes) and the producer holds
// its messages. PublishSync with a
// 1s ctx then returns ctx's error, naming the blocked connection, and the
// message stays accepted and pending; once the alarm clears it is confirmed
// and in the queue, and counted once.
func TestChaosPublishSyncWhileBlocked(t *testing.T) {
	url := testbroker.URL(t)
	q := testbroker.Name(t, "sync-blocked")
	deleteQueueAtEnd(t, url, q)
	off := []string{"set_vm_memory_high_watermark", "0.4"}
	t.Cleanup(func() { testbroker.Ctl(t, off...) })
	ev := &connEvents{}
	c := newClient(t, url, lavinmq.WithHooks(ev))
	var drops dropCount
	p, err := producer.New(c, q, producer.WithDeclare(nil), producer.OnDrop(drops.onDrop), producer.WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.PublishSync(ctx, producer.Message{Body: seqBody(0)}); err != nil {
		t.Fatalf("PublishSync before the alarm: %v", err)
	}

	testbroker.Ctl(t, "set_vm_memory_high_watermark", "0.000001")
	// RabbitMQ blocks a connection (and says so) when it next publishes.
	if err := p.Publish(ctx, producer.Message{Body: seqBody(1)}); err != nil {
		t.Fatal(err)
	}
	testbroker.Eventually(t, 30*time.Second, "connection.blocked", func() bool { b, _ := c.Blocked(); return b })
	before := p.Stats()
	sctx, scancel := context.WithTimeout(context.Background(), time.Second)
	defer scancel()
	t0 := time.Now()
	err = p.PublishSync(sctx, producer.Message{Body: seqBody(2)})
	t.Logf("PublishSync while blocked returned after %v: %v", time.Since(t0), err)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "blocks the connection") {
		t.Fatalf("PublishSync while blocked: %v, want ctx's error naming the blocked connection", err)
	}
	if s := p.Stats(); s.Accepted != 3 || s.Confirmed != before.Confirmed || s.Pending != before.Pending+1 {
		t.Fatalf("while blocked: %+v (before PublishSync %+v), want the message accepted and pending", s, before)
	}

	testbroker.Ctl(t, off...)
	flush(t, p, 30*time.Second)
	s := p.Stats()
	e := ev.snapshot()
	t.Logf("after the alarm: %+v; blocked %d, unblocked %d, reconnects %d", s, len(e.blocked), len(e.unblocked), len(e.reconnects))
	if len(e.reconnects) != 0 {
		t.Fatalf("the blocked connection was replaced %d times: blocking must not reconnect", len(e.reconnects))
	}
	if s.Confirmed != 3 || s.Dropped != 0 || drops.shutdown.Load()+drops.other.Load() != 0 {
		t.Fatalf("after the alarm: %+v, want all 3 confirmed, none dropped", s)
	}
	if n := testbroker.QueueLen(t, q); n != 3 {
		t.Fatalf("queue holds %d messages, want 3", n)
	}
}
