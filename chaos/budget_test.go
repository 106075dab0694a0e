//go:build chaos

package chaos

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/c3ecadf2/lavinmq-go/buffer"
	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

// resentCount counts re-sends through HookResent.
type resentCount struct{ n atomic.Int64 }

func (r *resentCount) OnResent(_ string, n int) { r.n.Add(int64(n)) }

// TestChaosByteBudgetAccountingThroughRestart publishes 64 KiB messages at
// about 24 MiB/s into a Confirm producer with a 4 MiB byte budget under
// DropOldest while the broker restarts: messages are confirmed before and
// after, evicted while it is down (the budget holds 64 of them), and those
// unconfirmed when the connection went are re-sent. The byte accounting must
// stay within the budget in every snapshot and come back to exactly 0 once
// everything has settled, with accepted = confirmed + dropped.
func TestChaosByteBudgetAccountingThroughRestart(t *testing.T) {
	const (
		bodySize = 64 << 10
		budget   = 4 << 20
		rate     = 400 // messages per second
	)
	testbroker.RequireManaged(t)
	testbroker.EnsureUpAtEnd(t)
	url := testbroker.URL(t)
	q := testbroker.Name(t, "budget")
	deleteQueueAtEnd(t, url, q)
	c := newClient(t, url, lavinmq.WithReconnectDelay(100*time.Millisecond, time.Second), lavinmq.WithConnectionName("chaos-budget"))
	var evicted, otherDrops atomic.Int64
	resent := &resentCount{}
	p, err := producer.New(c, q, producer.WithDeclare(nil), producer.WithPolicy(buffer.DropOldest), producer.WithBufferBytes(budget),
		producer.WithHooks(resent), producer.WithLogger(testLogger(t)),
		producer.OnDrop(func(_ producer.Message, _ string, r producer.DropReason) {
			if r == producer.Evicted {
				evicted.Add(1)
			} else {
				otherDrops.Add(1)
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})

	var maxPending atomic.Int64
	var bad atomic.Pointer[producer.Stats]
	check := func(s producer.Stats) {
		if s.PendingBytes > maxPending.Load() {
			maxPending.Store(s.PendingBytes)
		}
		if s.PendingBytes > budget || s.PendingBytes != s.BufferedBytes+s.InFlightBytes || s.BufferedBytes < 0 || s.InFlightBytes < 0 {
			bad.CompareAndSwap(nil, &s)
		}
	}
	var stop atomic.Bool
	var errs atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second / rate)
		defer tick.Stop()
		for !stop.Load() {
			<-tick.C
			if p.Publish(context.Background(), producer.Message{Body: make([]byte, bodySize)}) != nil {
				errs.Add(1)
			}
			check(p.Stats())
		}
	}()
	t.Cleanup(func() { stop.Store(true); <-done })

	testbroker.Eventually(t, 30*time.Second, "confirms before the restart", func() bool { return p.Stats().Confirmed > 100 })
	before := p.Stats()
	d := testbroker.Restart(t)
	during := p.Stats()
	testbroker.Eventually(t, time.Minute, "confirms after the restart", func() bool { return p.Stats().Confirmed > during.Confirmed+100 })
	time.Sleep(time.Second)
	stop.Store(true)
	<-done
	flush(t, p, time.Minute)
	s := p.Stats()
	t.Logf("restart took %v; before %+v; after the restart %+v; settled %+v; resent %d, evicted %d, other drops %d, largest PendingBytes %d of %d",
		d.Round(time.Millisecond), before, during, s, resent.n.Load(), evicted.Load(), otherDrops.Load(), maxPending.Load(), budget)
	if b := bad.Load(); b != nil {
		t.Fatalf("a snapshot breaks the byte budget: %+v", *b)
	}
	if errs.Load() != 0 {
		t.Errorf("%d Publish errors under DropOldest", errs.Load())
	}
	if s.Pending != 0 || s.PendingBytes != 0 || s.BufferedBytes != 0 || s.InFlightBytes != 0 {
		t.Fatalf("after the flush: %+v, want nothing pending and 0 bytes", s)
	}
	if s.Accepted != s.Confirmed+s.Dropped || s.DroppedBy[producer.Evicted] != uint64(evicted.Load()) || s.Dropped != uint64(evicted.Load()+otherDrops.Load()) {
		t.Fatalf("accounting: %+v; OnDrop evicted %d, other %d", s, evicted.Load(), otherDrops.Load())
	}
	if evicted.Load() == 0 {
		t.Errorf("nothing was evicted during the outage: the budget was never reached (the test proves nothing)")
	}
	if n := testbroker.QueueLen(t, q); uint64(n) < s.Confirmed {
		t.Errorf("the queue holds %d messages, fewer than the %d confirmed", n, s.Confirmed)
	}
}
