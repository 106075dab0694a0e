package buffer

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// stressLimit bounds every concurrent test: a hang fails the test instead of
// stalling CI.
const stressLimit = 45 * time.Second

// waitLimit bounds the tests of sleeping and waking: a lost wake-up fails
// them after this long.
const waitLimit = 10 * time.Second

// watchdog is shared by the workers of one concurrent test. Workers call
// expired() in their loops (it is cheap); the first to find the deadline past
// records the failure and every worker gives up.
type watchdog struct {
	t        *testing.T
	deadline time.Time
	tripped  atomic.Bool
	calls    atomic.Uint64
}

func newWatchdog(t *testing.T, limit time.Duration) *watchdog {
	return &watchdog{t: t, deadline: time.Now().Add(limit)}
}

func (w *watchdog) expired() bool {
	if w.tripped.Load() {
		return true
	}
	if w.calls.Add(1)%256 == 0 && time.Now().After(w.deadline) {
		if w.tripped.CompareAndSwap(false, true) {
			w.t.Errorf("deadline of %v passed", time.Until(w.deadline))
		}
		return true
	}
	return false
}

func encode(pusher, i int) uint64     { return uint64(pusher)<<32 | uint64(i) }
func decode(v uint64) (pusher, i int) { return int(v >> 32), int(v & (1<<32 - 1)) }

// checkOrder verifies that within one consumer's stream each pusher's values
// are strictly increasing, and marks them in seen (failing on a duplicate).
func checkOrder(t *testing.T, name string, stream []uint64, seen [][]bool) {
	t.Helper()
	last := make([]int, len(seen))
	for i := range last {
		last[i] = -1
	}
	for _, v := range stream {
		p, i := decode(v)
		if p >= len(seen) || i >= len(seen[p]) {
			t.Fatalf("%s: value %#x was never pushed", name, v)
		}
		if i <= last[p] {
			t.Fatalf("%s: pusher %d's value %d came after %d", name, p, i, last[p])
		}
		last[p] = i
		if seen[p][i] {
			t.Fatalf("%s: pusher %d's value %d delivered twice", name, p, i)
		}
		seen[p][i] = true
	}
}

// TestRaceStress: 4 pushers × 250_000 distinct values, 2 poppers. Every value
// is popped exactly once and each popper sees every pusher's values in order.
func TestRaceStress(t *testing.T) {
	const pushers, poppers = 4, 2
	per := 250_000
	if testing.Short() {
		per = 20_000
	}
	for _, capacity := range []int{64, 1, 2} {
		t.Run("cap"+itoa(capacity), func(t *testing.T) {
			start := time.Now()
			r := New[uint64](capacity)
			w := newWatchdog(t, stressLimit)
			total := int64(pushers * per)
			var popped atomic.Int64
			streams := make([][]uint64, poppers)
			var wg sync.WaitGroup
			for p := range pushers {
				wg.Go(func() {
					for i := 0; i < per; {
						if r.TryPush(encode(p, i)) {
							i++
						} else if w.expired() {
							return
						} else {
							runtime.Gosched()
						}
					}
				})
			}
			for c := range poppers {
				wg.Go(func() {
					s := make([]uint64, 0, total)
					for popped.Load() < total {
						if v, ok := r.TryPop(); ok {
							s = append(s, v)
							popped.Add(1)
						} else if w.expired() {
							break
						} else {
							runtime.Gosched()
						}
					}
					streams[c] = s
				})
			}
			wg.Wait()
			if t.Failed() {
				return
			}
			seen := make([][]bool, pushers)
			for p := range seen {
				seen[p] = make([]bool, per)
			}
			for c, s := range streams {
				checkOrder(t, "popper "+itoa(c), s, seen)
			}
			for p := range seen {
				for i, ok := range seen[p] {
					if !ok {
						t.Fatalf("pusher %d's value %d was never popped", p, i)
					}
				}
			}
			if r.Len() != 0 {
				t.Fatalf("Len()=%d after draining", r.Len())
			}
			t.Logf("%d values through %d slots in %v", total, capacity, time.Since(start))
		})
	}
}

// TestDropOldestConservation: pushers using DropOldest race with each other
// and with poppers on tiny rings. Every value ends up exactly once in a
// popper's stream, in an eviction, or still in the ring; and each of these
// streams keeps every pusher's order.
//
// The runs without poppers keep the ring full, so that every push evicts and
// the pushers contend on the eviction path only.
func TestDropOldestConservation(t *testing.T) {
	const pushers = 4
	per := 50_000
	if testing.Short() {
		per = 5_000
	}
	for _, tc := range []struct{ capacity, poppers int }{
		{1, 2}, {2, 2}, {3, 2}, {16, 2},
		{1, 0}, {3, 0}, {1024, 0},
	} {
		capacity, poppers := tc.capacity, tc.poppers
		t.Run("cap"+itoa(capacity)+"/poppers"+itoa(poppers), func(t *testing.T) {
			r := New[uint64](capacity)
			w := newWatchdog(t, stressLimit)
			ctx := context.Background()
			evicted := make([][]uint64, pushers)
			streams := make([][]uint64, poppers)
			var pushing sync.WaitGroup
			var stop atomic.Bool
			for p := range pushers {
				pushing.Go(func() {
					for i := 0; i < per && !w.expired(); i++ {
						ev, did, err := r.Push(ctx, encode(p, i), DropOldest)
						if err != nil {
							t.Errorf("DropOldest: %v", err)
							return
						}
						if did {
							evicted[p] = append(evicted[p], ev)
						}
					}
				})
			}
			var popping sync.WaitGroup
			for c := range poppers {
				popping.Go(func() {
					for !stop.Load() && !w.expired() {
						if v, ok := r.TryPop(); ok {
							streams[c] = append(streams[c], v)
						} else {
							runtime.Gosched()
						}
					}
				})
			}
			pushing.Wait()
			stop.Store(true)
			popping.Wait()
			if t.Failed() {
				return
			}
			var rest []uint64
			for range capacity + 1 {
				if v, ok := r.TryPop(); ok {
					rest = append(rest, v)
				}
			}
			seen := make([][]bool, pushers)
			for p := range seen {
				seen[p] = make([]bool, per)
			}
			// Evictions by one pusher come out of the ring in FIFO order too.
			for p, s := range evicted {
				checkOrder(t, "evictions of pusher "+itoa(p), s, seen)
			}
			for c, s := range streams {
				checkOrder(t, "popper "+itoa(c), s, seen)
			}
			checkOrder(t, "remainder", rest, seen)
			for p := range seen {
				for i, ok := range seen[p] {
					if !ok {
						t.Fatalf("pusher %d's value %d was lost", p, i)
					}
				}
			}
		})
	}
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}
