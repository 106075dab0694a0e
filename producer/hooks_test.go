package producer_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

// settleLog counts the confirm and write hooks per queue.
type settleLog struct {
	mu        sync.Mutex
	confirmed map[string]int
	written   map[string]int
}

func newSettleLog() *settleLog {
	return &settleLog{confirmed: map[string]int{}, written: map[string]int{}}
}

func (l *settleLog) OnConfirmed(queue string, _ time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.confirmed[queue]++
}

func (l *settleLog) OnWritten(queue string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.written[queue]++
}

func (l *settleLog) counts(queue string) (confirmed, written int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.confirmed[queue], l.written[queue]
}

var (
	_ producer.HookConfirmed = (*settleLog)(nil)
	_ producer.HookWritten   = (*settleLog)(nil)
)

// TestHooksTellWritesFromConfirms: FireAndForget reports each message handed
// to the socket with OnWritten and never OnConfirmed (no broker ack, no
// confirm latency); Confirm mode the other way round.
func TestHooksTellWritesFromConfirms(t *testing.T) {
	const n = 200
	c := newClient(t, testbroker.URL(t))
	for _, tc := range []struct {
		mode                       producer.Mode
		wantConfirmed, wantWritten int
	}{
		{producer.FireAndForget, 0, n},
		{producer.Confirm, n, 0},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			q := declare(t, nil)
			log := newSettleLog()
			p := newProducer(t, c, q, producer.WithMode(tc.mode), producer.WithHooks(log))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for i := range n {
				if err := p.Publish(ctx, producer.Message{Body: seqBody(uint64(i))}); err != nil {
					t.Fatal(err)
				}
			}
			flush(t, p, 30*time.Second)
			confirmed, written := log.counts(q)
			s := p.Stats()
			t.Logf("%v: %d messages, OnConfirmed %d, OnWritten %d, Stats.Confirmed %d", tc.mode, n, confirmed, written, s.Confirmed)
			if confirmed != tc.wantConfirmed || written != tc.wantWritten || s.Confirmed != n {
				t.Fatalf("%v: OnConfirmed %d, OnWritten %d, Stats.Confirmed %d; want %d, %d, %d",
					tc.mode, confirmed, written, s.Confirmed, tc.wantConfirmed, tc.wantWritten, n)
			}
		})
	}
}
