package producer

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

// These tests put messages in the ring directly, past Publish's validation,
// to prove the defense behind it: whatever validation misses is dropped with
// reason Invalid and cannot stall the messages behind it.

type lossCounter struct{ n atomic.Int64 }

func (l *lossCounter) OnDisconnected(lavinmq.DisconnectedEvent) { l.n.Add(1) }

func pushUnchecked(t *testing.T, p *Producer, m Message) {
	t.Helper()
	env := envelope{msg: m, at: int64(time.Since(p.epoch)), seq: p.seq.Add(1), epoch: p.flush.enter()}
	if !p.ring.TryPush(env) {
		t.Fatal("ring full")
	}
	p.accepted.Add(1)
}

func poisonRig(t *testing.T) (*Producer, *lossCounter, string, *[]DropReason) {
	t.Helper()
	url := testbroker.URL(t)
	lc := &lossCounter{}
	c, err := lavinmq.New(url, lavinmq.WithHooks(lc), lavinmq.WithReconnectDelay(20*time.Millisecond, 200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	q := testbroker.Name(t, "q")
	raw := testbroker.Raw(t)
	if _, err := raw.QueueDeclare(q, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = testbroker.Raw(t).QueueDelete(q, false, false, false) })
	var reasons []DropReason
	p, err := New(c, q, OnDrop(func(_ Message, _ string, r DropReason) { reasons = append(reasons, r) }),
		WithReopenDelay(10*time.Millisecond, 50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p, lc, q, &reasons
}

func settleAll(t *testing.T, p *Producer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatalf("flush: %v (stats %+v)", err, p.Stats())
	}
}

// TestUnencodableMessageIsDroppedAtOnce: a header value amqp091-go cannot
// write fails the publish before anything reaches the socket; the message is
// dropped with reason Invalid on that first try (amqp091-go closes the
// connection after any failed frame write: one reconnect, never a loop).
func TestUnencodableMessageIsDroppedAtOnce(t *testing.T) {
	p, lc, q, reasons := poisonRig(t)
	pushUnchecked(t, p, Message{Body: []byte("before")})
	settleAll(t, p)
	pushUnchecked(t, p, Message{Body: []byte("poison"), Headers: amqp.Table{"k": uint64(1)}})
	for range 20 {
		pushUnchecked(t, p, Message{Body: []byte("after")})
	}
	settleAll(t, p)
	s := p.Stats()
	t.Logf("stats %+v, connection losses %d", s, lc.n.Load())
	if s.Confirmed != 21 || s.Dropped != 1 || s.DroppedBy[Invalid] != 1 || len(*reasons) != 1 || (*reasons)[0] != Invalid {
		t.Fatalf("want 21 confirmed and one invalid drop: %+v %v", s, *reasons)
	}
	if n := lc.n.Load(); n > 1 {
		t.Fatalf("%d connection losses for one unencodable message, want at most 1", n)
	}
	if n := testbroker.QueueLen(t, q); n < 21 {
		t.Fatalf("queue holds %d, want the 21 good messages", n)
	}
}

// TestConnectionKillerIsDroppedAfterBudget: a content header larger than
// the broker's frame_max makes the broker close the whole connection (501
// FRAME_ERROR). The message is re-sent first after each reconnect; once
// it is alone in flight for the poison budget it is dropped as Invalid and
// the messages behind it are confirmed.
func TestConnectionKillerIsDroppedAfterBudget(t *testing.T) {
	p, lc, _, reasons := poisonRig(t)
	pushUnchecked(t, p, Message{Body: []byte("before")})
	settleAll(t, p)
	pushUnchecked(t, p, Message{Body: []byte("poison"), Headers: amqp.Table{"k": strings.Repeat("x", 200_000)}})
	for range 20 {
		pushUnchecked(t, p, Message{Body: []byte("after")})
	}
	settleAll(t, p)
	s := p.Stats()
	losses := lc.n.Load()
	t.Logf("stats %+v, connection losses %d", s, losses)
	if s.Confirmed != 21 || s.DroppedBy[Invalid] != 1 || len(*reasons) != 1 {
		t.Fatalf("want 21 confirmed and one invalid drop: %+v %v", s, *reasons)
	}
	// Budget strikes plus the first loss (others in flight, no strike); a
	// loss whose cause amqp091-go reports as its own failed write (a race
	// with the broker's close) charges nothing, so allow a few more.
	if losses < int64(DefaultPoisonBudget) || losses > 2*int64(DefaultPoisonBudget)+1 {
		t.Fatalf("%d connection losses, want between the poison budget (%d) and %d", losses, DefaultPoisonBudget, 2*DefaultPoisonBudget+1)
	}
}
