package producer_test

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

// Fault tests put an in-process toxiproxy between the client and the broker.

// TestConfirmAccountingUnderFaults publishes 100_000 distinct messages while
// the connection is reset and blackholed, then checks that every accepted
// message was received or reported dropped (and, with Block, received).
func TestConfirmAccountingUnderFaults(t *testing.T) {
	for _, tc := range []struct {
		policy buffer.Policy
		size   int
	}{{buffer.Block, 10_000}, {buffer.DropOldest, 2_000}} {
		t.Run(tc.policy.String(), func(t *testing.T) {
			const total = 100_000
			px := testbroker.NewProxy(t)
			c := newClient(t, px.URL, lavinmq.WithHeartbeat(time.Second), lavinmq.WithDialTimeout(time.Second),
				lavinmq.WithReconnectDelay(50*time.Millisecond, time.Second))
			q := declare(t, nil)
			drops := newDropLog()
			p := newProducer(t, c, q, producer.WithPolicy(tc.policy), producer.WithBufferSize(tc.size), producer.OnDrop(drops.fn))

			var published atomic.Uint64
			faultsDone := make(chan struct{})
			go func() { // faults, triggered by progress; each bounded in time
				defer close(faultsDone)
				waitFor := func(n uint64) {
					for deadline := time.Now().Add(60 * time.Second); published.Load() < n && time.Now().Before(deadline); {
						time.Sleep(5 * time.Millisecond)
					}
				}
				waitFor(total / 10)
				px.ResetPeer()
				time.Sleep(300 * time.Millisecond)
				px.RemoveToxic("reset")
				waitFor(total * 4 / 10)
				px.Blackhole() // detected by heartbeats (1s) or the write deadline
				time.Sleep(3500 * time.Millisecond)
				px.Restore()
				waitFor(total * 7 / 10)
				px.ResetPeer()
				time.Sleep(300 * time.Millisecond)
				px.RemoveToxic("reset")
			}()

			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			var accepted []bool = make([]bool, total)
			for i := range uint64(total) {
				err := p.Publish(ctx, producer.Message{Body: seqBody(i)})
				if err != nil {
					t.Fatalf("publish %d: %v", i, err)
				}
				accepted[i] = true
				published.Add(1)
			}
			<-faultsDone
			flush(t, p, 2*time.Minute)
			s := p.Stats()
			checkInvariant(t, s)
			if s.Accepted != total || s.Pending != 0 {
				t.Fatalf("stats after flush: %+v", s)
			}
			if tc.policy == buffer.Block && s.Dropped != 0 {
				t.Fatalf("policy Block dropped %d messages: %+v", s.Dropped, s.DroppedBy)
			}
			if int(s.Dropped) != drops.total() {
				t.Fatalf("stats say %d dropped, OnDrop was called %d times", s.Dropped, drops.total())
			}
			r := consumeAll(t, q, total-int(s.Dropped), time.Second, 2*time.Minute)
			dropped := map[uint64]bool{}
			for _, s := range drops.seqs {
				dropped[s] = true
			}
			lost, both := 0, 0
			for i := range uint64(total) {
				got := r.count[i] > 0
				switch {
				case !got && !dropped[i]:
					lost++
				case got && dropped[i]:
					both++ // an evicted message was never sent, so this must not happen
				}
			}
			t.Logf("policy %s: accepted %d, confirmed %d, dropped %d %v, resent %d, received %d distinct, %d duplicates, lost %d",
				tc.policy, s.Accepted, s.Confirmed, s.Dropped, s.DroppedBy, s.Resent, len(r.count), r.duplicates(), lost)
			if lost != 0 || both != 0 {
				t.Fatalf("%d accepted messages neither received nor reported dropped; %d both", lost, both)
			}
			if s.Resent == 0 {
				t.Fatalf("no message was re-sent: the faults did not hit unconfirmed messages")
			}
		})
	}
}

// TestResendKeepsOrder cuts the connection while thousands of messages are
// unconfirmed (acks are delayed) and checks that the re-sent ones arrive in
// their original order, before anything newer.
func TestResendKeepsOrder(t *testing.T) {
	const total = 20_000
	px := testbroker.NewProxy(t)
	c := newClient(t, px.URL, lavinmq.WithHeartbeat(time.Second), lavinmq.WithReconnectDelay(50*time.Millisecond, time.Second))
	q := declare(t, nil)
	p := newProducer(t, c, q, producer.WithMaxInFlight(5000), producer.WithBufferSize(total), producer.WithPolicy(buffer.Raise))
	px.AddToxic("slow-acks", "latency", "downstream", map[string]any{"latency": 300})
	for i := range uint64(total) {
		if err := p.Publish(context.Background(), producer.Message{Body: seqBody(i)}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	testbroker.Eventually(t, 30*time.Second, "some confirms", func() bool { return p.Stats().Confirmed > 1000 })
	px.ResetPeer()
	time.Sleep(300 * time.Millisecond)
	px.RemoveToxic("reset")
	px.RemoveToxic("slow-acks")
	flush(t, p, time.Minute)
	s := p.Stats()
	if s.Resent == 0 || s.Confirmed != total {
		t.Fatalf("want re-sends and every message confirmed: %+v", s)
	}
	r := consumeAll(t, q, total, 500*time.Millisecond, time.Minute)
	if len(r.count) != total {
		t.Fatalf("received %d distinct of %d", len(r.count), total)
	}
	// First deliveries must be 0,1,2,... and the second deliveries (the
	// re-sends of messages the broker had before the cut) ascending too.
	next, lastDup := uint64(0), int64(-1)
	seen := map[uint64]bool{}
	for _, m := range r.order {
		if !seen[m] {
			if m != next {
				t.Fatalf("first delivery of %d where %d was expected: order broken", m, next)
			}
			seen[m] = true
			next++
			continue
		}
		if int64(m) <= lastDup {
			t.Fatalf("re-sent %d arrived after re-sent %d: re-send order broken", m, lastDup)
		}
		lastDup = int64(m)
	}
	t.Logf("re-sent %d, %d duplicates delivered, order kept", s.Resent, r.duplicates())
}

// TestPublishDoesNotBlockDuringOutage publishes thousands of messages while
// the broker is unreachable: every call returns (with Raise, none fails
// below capacity), and all arrive once the broker is back.
func TestPublishDoesNotBlockDuringOutage(t *testing.T) {
	const n = 5000
	px := testbroker.NewProxy(t)
	c := newClient(t, px.URL, lavinmq.WithReconnectDelay(50*time.Millisecond, 500*time.Millisecond), lavinmq.WithDialTimeout(time.Second))
	q := declare(t, nil)
	p := newProducer(t, c, q, producer.WithPolicy(buffer.Raise))
	if err := c.WaitConnected(context.Background()); err != nil {
		t.Fatal(err)
	}
	px.Disable()
	testbroker.Eventually(t, 10*time.Second, "disconnect noticed", func() bool { return !c.Connected() })
	for i := range uint64(n) {
		if err := p.Publish(context.Background(), producer.Message{Body: seqBody(i)}); err != nil {
			t.Fatalf("publish %d during outage: %v", i, err)
		}
	}
	if s := p.Stats(); s.Accepted != n || s.Confirmed != 0 || s.Pending != n {
		t.Fatalf("during the outage: %+v", s)
	}
	px.Enable()
	flush(t, p, 30*time.Second)
	r := consumeAll(t, q, n, 300*time.Millisecond, 30*time.Second)
	if len(r.count) != n {
		t.Fatalf("received %d of %d", len(r.count), n)
	}
}
