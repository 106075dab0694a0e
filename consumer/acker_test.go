package consumer

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// modelBroker plays the broker's side of one channel for the ack tracker:
// it knows which tags it delivered and has not seen settled, refuses (like
// RabbitMQ and LavinMQ, with 406 PRECONDITION_FAILED) a tag it does not hold,
// and checks that a multiple ack covers only deliveries the handlers settled
// with Ack. It records every frame in order.
type modelBroker struct {
	t       testing.TB
	mu      sync.Mutex
	unacked map[uint64]bool   // delivered, not settled at the broker
	decided map[uint64]Action // what the handler returned (the test sets it before settling)
	result  map[uint64]string // what the broker applied: "ack" or "nack"
	frames  []string
	bad     []string // protocol errors the real broker would close the channel for
}

func newModelBroker(t testing.TB) *modelBroker {
	return &modelBroker{t: t, unacked: map[uint64]bool{}, decided: map[uint64]Action{}, result: map[uint64]string{}}
}

func (b *modelBroker) deliver(tag uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.unacked[tag] = true
}

func (b *modelBroker) decide(tag uint64, a Action) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.decided[tag] = a
}

func (b *modelBroker) Ack(tag uint64, multiple bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.frames = append(b.frames, fmt.Sprintf("ack %d%s", tag, map[bool]string{true: " multiple"}[multiple]))
	if !b.unacked[tag] {
		b.bad = append(b.bad, fmt.Sprintf("ack of unknown delivery tag %d", tag))
		return nil
	}
	for t := range b.unacked {
		if t == tag || multiple && t < tag {
			if b.decided[t] != Ack {
				b.bad = append(b.bad, fmt.Sprintf("ack %d (multiple %v) covers %d, settled %v", tag, multiple, t, b.decided[t]))
			}
			delete(b.unacked, t)
			b.result[t] = "ack"
		}
	}
	return nil
}

func (b *modelBroker) Nack(tag uint64, multiple, requeue bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.frames = append(b.frames, fmt.Sprintf("nack %d", tag))
	if multiple || !b.unacked[tag] {
		b.bad = append(b.bad, fmt.Sprintf("nack of tag %d (multiple %v) not held", tag, multiple))
		return nil
	}
	delete(b.unacked, tag)
	b.result[tag] = "nack"
	return nil
}

func (b *modelBroker) takeFrames() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	f := b.frames
	b.frames = nil
	return f
}

func (b *modelBroker) check() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.bad) > 0 {
		b.t.Fatalf("protocol errors: %v", b.bad)
	}
}

// testAcker is an acker on a modelBroker with counting callbacks.
type testAcker struct {
	*acker
	b              *modelBroker
	mu             sync.Mutex
	acked, stale   int
	frames, staleN int
	up             bool
	next           uint64
}

func newTestAcker(t testing.TB, batch, spill int, delay time.Duration) *testAcker {
	ta := &testAcker{b: newModelBroker(t), up: true}
	ta.acker = &acker{
		ch:    ta.b,
		live:  func() bool { ta.mu.Lock(); defer ta.mu.Unlock(); return ta.up },
		acked: func(n int) { ta.mu.Lock(); ta.acked += n; ta.frames++; ta.mu.Unlock() },
		stale: func(_ uint64, n int, _ error) { ta.mu.Lock(); ta.stale += n; ta.staleN++; ta.mu.Unlock() },
		batch: batch, spill: spill, delay: delay,
	}
	return ta
}

// deliverN delivers n more tags, tracked as the pump does.
func (ta *testAcker) deliverN(n int) (first uint64) {
	first = ta.next + 1
	for range n {
		ta.next++
		ta.b.deliver(ta.next)
		ta.track(ta.next)
	}
	return first
}

func (ta *testAcker) settle(tag uint64, a Action) {
	ta.b.decide(tag, a)
	if a == Ack {
		ta.ack(tag)
		return
	}
	err := ta.nack(tag, a == NackRequeue)
	ta.mu.Lock()
	up := ta.up
	ta.mu.Unlock()
	if err != nil && up {
		ta.b.t.Fatalf("nack %d: %v", tag, err)
	}
}

func (ta *testAcker) counts() (acked, stale, frames int) {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	return ta.acked, ta.stale, ta.frames
}

func wantFrames(t *testing.T, got []string, want ...string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("frames %q, want %q", got, want)
	}
}

func TestAckTrackerCoalescesInOrderRun(t *testing.T) {
	ta := newTestAcker(t, 25, 50, time.Minute)
	ta.deliverN(100)
	for tag := uint64(1); tag <= 100; tag++ {
		ta.settle(tag, Ack)
	}
	wantFrames(t, ta.b.takeFrames(), "ack 25 multiple", "ack 50 multiple", "ack 75 multiple", "ack 100 multiple")
	ta.close()
	ta.b.check()
	if acked, stale, frames := ta.counts(); acked != 100 || stale != 0 || frames != 4 {
		t.Fatalf("acked %d stale %d frames %d, want 100 0 4", acked, stale, frames)
	}
}

func TestAckTrackerOutOfOrderSendsOnlyContiguousPrefix(t *testing.T) {
	ta := newTestAcker(t, 4, 50, time.Minute)
	ta.deliverN(10)
	// 2..5 settle while 1 is still in its handler: nothing may go (a multiple
	// ack of 5 would ack 1 too).
	for _, tag := range []uint64{2, 3, 4, 5} {
		ta.settle(tag, Ack)
	}
	wantFrames(t, ta.b.takeFrames())
	ta.settle(1, Ack) // now 1..5 are contiguous: one frame
	wantFrames(t, ta.b.takeFrames(), "ack 5 multiple")
	// 7, 8, 9 settle, 6 pending; then 6: 6..9 is the run.
	for _, tag := range []uint64{9, 7, 8} {
		ta.settle(tag, Ack)
	}
	wantFrames(t, ta.b.takeFrames())
	ta.settle(6, Ack)
	wantFrames(t, ta.b.takeFrames(), "ack 9 multiple")
	ta.settle(10, Ack)
	ta.close() // flushes what is settled
	wantFrames(t, ta.b.takeFrames(), "ack 10")
	ta.b.check()
}

func TestAckTrackerNackFlushesAcksBeforeIt(t *testing.T) {
	ta := newTestAcker(t, 25, 50, time.Minute)
	ta.deliverN(8)
	for _, tag := range []uint64{1, 2, 3, 4, 6, 7} {
		ta.settle(tag, Ack)
	}
	wantFrames(t, ta.b.takeFrames())
	ta.settle(5, NackRequeue) // the acks before it (1..4) first, then the nack alone
	wantFrames(t, ta.b.takeFrames(), "ack 4 multiple", "nack 5")
	ta.settle(8, NackDiscard) // 6, 7 are before it; the nacked 5 is skipped by the run
	wantFrames(t, ta.b.takeFrames(), "ack 7 multiple", "nack 8")
	ta.close()
	wantFrames(t, ta.b.takeFrames())
	ta.b.check()
	if acked, _, frames := ta.counts(); acked != 6 || frames != 2 {
		t.Fatalf("acked %d in %d frames, want 6 in 2", acked, frames)
	}
}

func TestAckTrackerSpillsBehindStuckDelivery(t *testing.T) {
	// Prefetch 20: batch 5, spill 10. Delivery 1 never returns; the acks
	// behind it must not hold the window closed.
	ta := newTestAcker(t, 5, 10, time.Minute)
	ta.deliverN(30)
	for tag := uint64(2); tag <= 10; tag++ {
		ta.settle(tag, Ack)
	}
	wantFrames(t, ta.b.takeFrames()) // 9 waiting, below spill
	ta.settle(11, Ack)               // 10 waiting behind 1: each on its own
	if f := ta.b.takeFrames(); len(f) != 10 || f[0] != "ack 2" || f[9] != "ack 11" {
		t.Fatalf("frames %q, want ack 2 .. ack 11 singly", f)
	}
	for tag := uint64(12); tag <= 30; tag++ {
		ta.settle(tag, Ack)
		if ta.ring.acks >= ta.spill {
			t.Fatalf("after %d: %d acks waiting, spill %d", tag, ta.ring.acks, ta.spill)
		}
	}
	ta.settle(1, Ack)
	ta.close()
	ta.b.check()
	if acked, _, _ := ta.counts(); acked != 30 {
		t.Fatalf("acked %d of 30", acked)
	}
}

func TestAckTrackerTimerFlushes(t *testing.T) {
	ta := newTestAcker(t, 25, 50, 20*time.Millisecond)
	ta.deliverN(5)
	for tag := uint64(1); tag <= 3; tag++ {
		ta.settle(tag, Ack)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if acked, _, _ := ta.counts(); acked == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the timer did not flush 3 settled acks within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	wantFrames(t, ta.b.takeFrames(), "ack 3 multiple")
	// Behind a pending delivery, the timer sends what waits one by one.
	ta.settle(5, Ack)
	deadline = time.Now().Add(5 * time.Second)
	for {
		if acked, _, _ := ta.counts(); acked == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the timer did not flush the ack behind a pending delivery within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	wantFrames(t, ta.b.takeFrames(), "ack 5")
	ta.settle(4, Ack)
	ta.close()
	ta.b.check()
}

func TestAckTrackerDeadChannelReportsStale(t *testing.T) {
	ta := newTestAcker(t, 25, 50, time.Minute)
	ta.deliverN(10)
	for _, tag := range []uint64{1, 2, 3, 5, 6} {
		ta.settle(tag, Ack)
	}
	ta.mu.Lock()
	ta.up = false // the connection died
	ta.mu.Unlock()
	ta.close()
	ta.ack(4) // a handler finishing after the end: stale, never written
	if err := ta.nack(7, true); err == nil {
		t.Fatal("nack on a closed acker: want an error")
	}
	wantFrames(t, ta.b.takeFrames())
	if acked, stale, _ := ta.counts(); acked != 0 || stale != 6 {
		t.Fatalf("acked %d stale %d, want 0 and 6 (one per delivery)", acked, stale)
	}
}

func TestAckTrackerRingStaysBoundedBehindStuckDelivery(t *testing.T) {
	ta := newTestAcker(t, 25, 50, time.Minute)
	ta.deliverN(1) // never settled
	maxLen := 0
	for range 10_000 {
		tag := ta.deliverN(1)
		ta.settle(tag, NackRequeue)
		maxLen = max(maxLen, ta.ring.len())
	}
	t.Logf("ring length at most %d over 10000 nacks behind a stuck delivery", maxLen)
	if maxLen > 100 {
		t.Fatalf("ring grew to %d slots", maxLen)
	}
	ta.settle(1, Ack)
	ta.close()
	ta.b.check()
}

// FuzzAckTracker drives the tracker with deliveries, out-of-order settles of
// every kind, timer flushes and a lost channel, against the model broker: no
// frame the broker would refuse, no ack of a delivery not settled with Ack,
// fewer than spill acks waiting, and at the end every delivery applied once
// (or, on a lost channel, reported stale).
func FuzzAckTracker(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 1, 1, 2, 3, 0, 1, 4})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 17, 33, 1, 65, 5, 1, 1, 1, 1})
	f.Fuzz(fuzzAckTracker)
}

func fuzzAckTracker(t *testing.T, ops []byte) {
	if len(ops) > 1000 {
		ops = ops[:1000] // the model broker is quadratic
	}
	{
		batch := 1 + len(ops)%7
		ta := newTestAcker(t, batch, batch+len(ops)%5, time.Hour)
		var pending []uint64
		decided := map[uint64]Action{}
		lost := false
		for _, op := range ops {
			switch {
			case op%8 <= 2 || len(pending) == 0: // deliver
				pending = append(pending, ta.deliverN(1))
			case op%8 == 7:
				ta.mu.Lock()
				ta.armed = true
				ta.mu.Unlock()
				ta.onTimer()
			default: // settle a pending one, chosen by the op
				i := int(op>>3) % len(pending)
				tag := pending[i]
				pending = append(pending[:i], pending[i+1:]...)
				a := [...]Action{Ack, Ack, Ack, NackRequeue, NackDiscard}[op%8-3]
				decided[tag] = a
				ta.settle(tag, a)
			}
			if ta.ring.acks >= ta.spill {
				t.Fatalf("%d acks waiting, spill %d", ta.ring.acks, ta.spill)
			}
			if op == 0xff && !lost {
				lost = true
				ta.mu.Lock()
				ta.up = false
				ta.mu.Unlock()
			}
		}
		for _, tag := range pending {
			decided[tag] = Ack
			ta.settle(tag, Ack)
		}
		ta.close()
		ta.b.check()
		acked, stale, _ := ta.counts()
		wantAcks := 0
		for tag, a := range decided {
			if a == Ack {
				wantAcks++
			}
			if got := ta.b.result[tag]; !lost && got != map[bool]string{true: "ack", false: "nack"}[a == Ack] {
				t.Fatalf("tag %d settled %v, broker applied %q", tag, a, got)
			}
		}
		if acked+stale != wantAcks || (!lost && stale != 0) {
			t.Fatalf("acked %d + stale %d, want %d acks (lost %v)", acked, stale, wantAcks, lost)
		}
		if !lost && len(ta.b.unacked) != 0 {
			t.Fatalf("broker still holds %v", ta.b.unacked)
		}
	}
}

// BenchmarkAckTracker measures the tracker's cost per delivery (track, settle
// with Ack, one multiple ack per 25) with a broker that costs nothing, in
// order and with 8 handlers finishing out of order.
func BenchmarkAckTracker(b *testing.B) {
	for _, window := range []int{1, 8} {
		b.Run(fmt.Sprintf("window-%d", window), func(b *testing.B) {
			a := &acker{ch: nopAcks{}, live: func() bool { return true }, acked: func(int) {},
				stale: func(uint64, int, error) {}, batch: 25, spill: 50, delay: time.Hour}
			b.ReportAllocs()
			tag := uint64(0)
			for b.Loop() {
				tag++
				a.track(tag)
				// Settle the tags of a window in reverse: the last one closes the run.
				if tag%uint64(window) == 0 {
					for t := tag; t > tag-uint64(window); t-- {
						a.ack(t)
					}
				}
			}
			a.close()
		})
	}
}

type nopAcks struct{}

func (nopAcks) Ack(uint64, bool) error        { return nil }
func (nopAcks) Nack(uint64, bool, bool) error { return nil }
