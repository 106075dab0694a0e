package buffer

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// consume runs the documented consumer loop until n elements have been
// received or ctx ends, and counts its loop iterations and its waits.
func consume[T any](ctx context.Context, r *Ring[T], n int, got func(T)) (iterations, waits int) {
	for received := 0; received < n; {
		iterations++
		if v, ok := r.TryPop(); ok {
			got(v)
			received++
			continue
		}
		ch := r.NotEmpty()
		if v, ok := r.TryPop(); ok {
			got(v)
			received++
			continue
		}
		waits++
		select {
		case <-ch:
		case <-ctx.Done():
			return iterations, waits
		}
	}
	return iterations, waits
}

// TestNotEmptyNoLostWakeup: the consumer sleeps on an empty ring (there is no
// polling timeout: a lost wake-up would hang until the deadline) while
// elements arrive one by one with small gaps. Every element arrives, and the
// loop count proves there is no busy loop: each iteration either pops or
// waits for a token, and each token comes from one push.
func TestNotEmptyNoLostWakeup(t *testing.T) {
	const n = 400
	r := New[int](4)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	var got []int
	var iterations, waits int
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		iterations, waits = consume(ctx, r, n, func(v int) { got = append(got, v) })
	}()
	for i := range n {
		switch {
		case i%50 < 5: // a short burst
		case i%2 == 0:
			time.Sleep(50 * time.Microsecond)
		default:
			time.Sleep(300 * time.Microsecond)
		}
		for !r.TryPush(i) && ctx.Err() == nil {
			runtime.Gosched()
		}
	}
	<-finished
	if ctx.Err() != nil {
		t.Fatalf("consumer stuck: received %d of %d (lost wake-up)", len(got), n)
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("element %d is %d", i, v)
		}
	}
	if waits > n+1 || iterations > 2*n+1 {
		t.Fatalf("busy loop: %d iterations, %d waits for %d elements", iterations, waits, n)
	}
	if waits < n/4 {
		t.Fatalf("the consumer slept only %d times for %d spaced pushes", waits, n)
	}
	t.Logf("%d elements, %d iterations, %d waits", n, iterations, waits)
}

// TestNotEmptyUnderContention: many pushers, one sleeping consumer, tiny ring.
func TestNotEmptyUnderContention(t *testing.T) {
	const pushers = 4
	per := 50_000
	if testing.Short() {
		per = 5_000
	}
	r := New[uint64](8)
	w := newWatchdog(t, waitLimit)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	var wg sync.WaitGroup
	for p := range pushers {
		wg.Go(func() {
			for i := 0; i < per; {
				if r.TryPush(encode(p, i)) {
					i++
					if i%1000 == 0 {
						time.Sleep(20 * time.Microsecond) // let the consumer catch up and sleep
					}
				} else if w.expired() {
					return
				} else {
					runtime.Gosched()
				}
			}
		})
	}
	var stream []uint64
	iterations, waits := consume(ctx, r, pushers*per, func(v uint64) { stream = append(stream, v) })
	wg.Wait()
	if t.Failed() {
		return
	}
	if len(stream) != pushers*per {
		t.Fatalf("received %d of %d", len(stream), pushers*per)
	}
	seen := make([][]bool, pushers)
	for p := range seen {
		seen[p] = make([]bool, per)
	}
	checkOrder(t, "consumer", stream, seen)
	if iterations > 2*pushers*per+1 {
		t.Fatalf("busy loop: %d iterations for %d elements", iterations, pushers*per)
	}
	t.Logf("%d iterations, %d waits", iterations, waits)
}

// TestNotEmptySeveralConsumers: two sleeping consumers share the token; no
// element is stranded and none is delivered twice.
func TestNotEmptySeveralConsumers(t *testing.T) {
	const n = 2000
	r := New[uint64](4)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	done, stopConsumers := context.WithCancel(ctx)
	var received atomic.Int64
	streams := make([][]uint64, 2)
	var wg sync.WaitGroup
	for c := range streams {
		wg.Go(func() {
			consume(done, r, n, func(v uint64) {
				streams[c] = append(streams[c], v)
				if received.Add(1) == n {
					stopConsumers()
				}
			})
		})
	}
	for i := range n {
		if i%10 == 0 {
			time.Sleep(100 * time.Microsecond)
		}
		for !r.TryPush(encode(0, i)) && ctx.Err() == nil {
			runtime.Gosched()
		}
	}
	wg.Wait()
	stopConsumers()
	if ctx.Err() != nil {
		t.Fatalf("consumers stuck at %d of %d", received.Load(), n)
	}
	seen := [][]bool{make([]bool, n)}
	for c, s := range streams {
		checkOrder(t, "consumer "+itoa(c), s, seen)
	}
	for i, ok := range seen[0] {
		if !ok {
			t.Fatalf("element %d stranded", i)
		}
	}
}

// waitFor polls cond (test helper only) and fails after 5 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func pushAsync(r *Ring[int], ctx context.Context, v int) <-chan error {
	res := make(chan error, 1)
	go func() {
		_, _, err := r.Push(ctx, v, Block)
		res <- err
	}()
	return res
}

func TestBlockWaitsForPop(t *testing.T) {
	r := New[int](1)
	r.TryPush(1)
	res := pushAsync(r, context.Background(), 2)
	waitFor(t, "the pusher to park", func() bool { return r.parked.Load() == 1 })
	select {
	case err := <-res:
		t.Fatalf("Block returned %v on a full ring", err)
	case <-time.After(20 * time.Millisecond):
	}
	if v, ok := r.TryPop(); !ok || v != 1 {
		t.Fatalf("TryPop()=%d,%v", v, ok)
	}
	select {
	case err := <-res:
		if err != nil {
			t.Fatalf("Block: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the pop did not wake the Block pusher")
	}
	if v, ok := r.TryPop(); !ok || v != 2 {
		t.Fatalf("TryPop()=%d,%v want 2", v, ok)
	}
	if r.parked.Load() != 0 {
		t.Fatalf("parked=%d after the push", r.parked.Load())
	}
}

func TestBlockHonoursContext(t *testing.T) {
	t.Run("deadline", func(t *testing.T) {
		r := New[int](2)
		r.TryPush(1)
		r.TryPush(2)
		const d = 30 * time.Millisecond
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		start := time.Now()
		_, did, err := r.Push(ctx, 3, Block)
		if !errors.Is(err, context.DeadlineExceeded) || did {
			t.Fatalf("Push = %v,%v; want DeadlineExceeded", did, err)
		}
		if el := time.Since(start); el < d {
			t.Fatalf("returned after %v, before the deadline", el)
		}
		if r.Len() != 2 || r.parked.Load() != 0 {
			t.Fatalf("Len()=%d parked=%d", r.Len(), r.parked.Load())
		}
	})
	t.Run("cancel", func(t *testing.T) {
		r := New[int](1)
		r.TryPush(1)
		ctx, cancel := context.WithCancel(context.Background())
		res := pushAsync(r, ctx, 2)
		waitFor(t, "the pusher to park", func() bool { return r.parked.Load() == 1 })
		cancel()
		select {
		case err := <-res:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Push = %v; want Canceled", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("cancel did not wake the Block pusher")
		}
		if v, _ := r.TryPop(); v != 1 || r.Len() != 0 {
			t.Fatalf("the cancelled push changed the ring")
		}
	})
}

// TestWakeBlocked: WakeBlocked wakes every parked pusher; those that still
// find the ring full park again (a fresh channel generation proves they went
// round), and they complete once pops make room.
func TestWakeBlocked(t *testing.T) {
	r := New[int](2)
	r.TryPush(-1)
	r.TryPush(-2)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	results := make([]<-chan error, 3)
	for i := range results {
		results[i] = pushAsync(r, ctx, i)
	}
	waitFor(t, "3 parked pushers", func() bool { return r.parked.Load() == 3 })
	r.mu.Lock()
	gen := r.notFull
	r.mu.Unlock()
	r.WakeBlocked()
	waitFor(t, "the pushers to park again", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.parked.Load() == 3 && r.notFull != nil && r.notFull != gen
	})
	for i, res := range results {
		select {
		case err := <-res:
			t.Fatalf("pusher %d returned %v although the ring is still full", i, err)
		default:
		}
	}
	r.WakeBlocked() // with the ring still full, twice is harmless
	var got []int
	for len(got) < 5 {
		if v, ok := r.TryPop(); ok {
			got = append(got, v)
		} else if ctx.Err() != nil {
			t.Fatalf("stuck with %v", got)
		} else {
			time.Sleep(time.Millisecond)
		}
	}
	for i, res := range results {
		if err := <-res; err != nil {
			t.Fatalf("pusher %d: %v", i, err)
		}
	}
	if got[0] != -1 || got[1] != -2 {
		t.Fatalf("FIFO broken: %v", got)
	}
}

// TestBlockManyPushers: several Block pushers on a tiny ring, one consumer;
// a pop wakes the parked pushers, so none stays parked while there is room.
func TestBlockManyPushers(t *testing.T) {
	const pushers = 8
	per := 5_000
	if testing.Short() {
		per = 500
	}
	r := New[uint64](2)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	var wg sync.WaitGroup
	for p := range pushers {
		wg.Go(func() {
			for i := range per {
				if _, _, err := r.Push(ctx, encode(p, i), Block); err != nil {
					t.Errorf("pusher %d: %v", p, err)
					return
				}
			}
		})
	}
	var stream []uint64
	consume(ctx, r, pushers*per, func(v uint64) { stream = append(stream, v) })
	wg.Wait()
	if len(stream) != pushers*per {
		t.Fatalf("received %d of %d", len(stream), pushers*per)
	}
	seen := make([][]bool, pushers)
	for p := range seen {
		seen[p] = make([]bool, per)
	}
	checkOrder(t, "consumer", stream, seen)
	if r.parked.Load() != 0 {
		t.Fatalf("parked=%d at the end", r.parked.Load())
	}
}

// TestBlockPingPong: one Block pusher and one sleeping consumer on a ring of
// capacity 1, so nearly every push parks and races with the pop that makes
// room. A pusher that parked without re-checking after registering, or a pop
// that missed a registered pusher, deadlocks both sides (the consumer then
// sleeps on an empty ring): the deadline catches it.
func TestBlockPingPong(t *testing.T) {
	n := 100_000
	if testing.Short() {
		n = 20_000
	}
	r := New[int](1)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	pushed := make(chan error, 1)
	go func() {
		for i := range n {
			if _, _, err := r.Push(ctx, i, Block); err != nil {
				pushed <- err
				return
			}
		}
		pushed <- nil
	}()
	next := 0
	consume(ctx, r, n, func(v int) {
		if v != next {
			t.Errorf("got %d, want %d", v, next)
		}
		next++
	})
	if err := <-pushed; err != nil || next != n {
		t.Fatalf("stuck after %d of %d elements (pusher: %v): lost wake-up", next, n, err)
	}
}
