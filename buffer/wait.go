package buffer

import (
	"context"
	"runtime"
	"time"
)

// Sleeping and waking.
//
// Both directions use the same Dekker-style handshake, which relies on
// sync/atomic operations being sequentially consistent:
//
//	waiter: store "I may sleep" flag;  re-check the ring;   sleep
//	worker: change the ring (publish); load the flag;       wake if set
//
// Either the waiter's re-check sees the change, or the worker's load sees the
// flag. On the hot path a push or pop pays one atomic load of a flag that
// nobody writes while no one sleeps; channels are touched only when someone
// does.
//
// Consumers: NotEmpty sets sleeping and hands out a capacity-1 token channel;
// the push that finds sleeping set clears it and drops a token in
// (non-blocking). A stale token only causes one spurious wake-up.
//
// Block pushers: they count themselves in parked and wait on notFull, a
// channel that a pop closes (a broadcast) when parked is non-zero; the next
// pusher to park makes a new one. Every parked pusher re-checks, and those
// that still find the ring full park again.

// NotEmpty returns a channel that receives a value after a push that
// happens after this call. It may also receive a value left by an earlier
// push (a spurious wake-up), so callers re-check with TryPop. The consumer
// pattern, with no lost wake-up and no busy loop:
//
//	for {
//		if v, ok := r.TryPop(); ok {
//			use(v)
//			continue
//		}
//		ch := r.NotEmpty()
//		if v, ok := r.TryPop(); ok { // re-check after arming
//			use(v)
//			continue
//		}
//		select {
//		case <-ch:
//		case <-ctx.Done():
//			return
//		}
//	}
//
// All callers share one token: with several sleeping consumers a push wakes
// one of them, which keeps popping until the ring is empty before it sleeps
// again, so no element is left behind while every consumer sleeps.
func (r *Ring[T]) NotEmpty() <-chan struct{} {
	r.sleeping.Store(1)
	return r.notEmpty
}

// wakeConsumer hands the token to a consumer that armed NotEmpty.
func (r *Ring[T]) wakeConsumer() {
	if r.sleeping.CompareAndSwap(1, 0) {
		select {
		case r.notEmpty <- struct{}{}:
		default: // a token is already waiting
		}
	}
}

// WakeBlocked wakes every pusher parked by the Block policy so that it
// re-checks: a pusher whose ctx is done returns ctx.Err(), one that now finds
// room pushes, and the others park again. The owner calls it on shutdown,
// after cancelling the pushers' contexts or making room.
func (r *Ring[T]) WakeBlocked() { r.wakeBlocked() }

func (r *Ring[T]) wakeBlocked() {
	r.mu.Lock()
	if r.notFull != nil {
		close(r.notFull)
		r.notFull = nil
	}
	r.mu.Unlock()
}

// park registers a Block pusher and returns the channel to wait on. The
// caller must re-check the ring after park and call r.parked.Add(-1) when it
// stops waiting.
func (r *Ring[T]) park() <-chan struct{} {
	r.mu.Lock()
	if r.notFull == nil {
		r.notFull = make(chan struct{})
	}
	ch := r.notFull
	r.parked.Add(1)
	r.mu.Unlock()
	return ch
}

// pushBlock pushes v, waiting for room until ctx ends.
func (r *Ring[T]) pushBlock(ctx context.Context, v T) error {
	if r.TryPush(v) {
		return nil
	}
	if ctx == nil {
		ctx = context.Background()
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		ch := r.park()
		if r.TryPush(v) { // re-check after registering: no lost wake-up
			r.parked.Add(-1)
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
		}
		r.parked.Add(-1)
		if r.TryPush(v) {
			return nil
		}
	}
}

// backoff paces a retry loop that waits for another goroutine to finish an
// operation it has half done: a few immediate retries (it is usually a few
// nanoseconds away), then runtime.Gosched (it may be waiting for our P),
// then sleeps growing to a millisecond (its thread may be descheduled by the
// OS). The loop never spins a core for long and always makes progress once
// the other goroutine runs.
type backoff struct{ n uint32 }

const (
	backoffSpins  = 8
	backoffYields = 64
	backoffMaxNap = time.Millisecond
)

func (b *backoff) wait() {
	b.n++
	switch {
	case b.n <= backoffSpins:
	case b.n <= backoffSpins+backoffYields:
		runtime.Gosched()
	default:
		nap := time.Microsecond << min(b.n-backoffSpins-backoffYields, 10)
		time.Sleep(min(nap, backoffMaxNap))
	}
}
