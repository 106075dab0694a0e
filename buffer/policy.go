package buffer

import (
	"context"
	"errors"
	"strconv"
)

// Policy says what Push does when the ring is full.
//
// The zero Policy is not valid: a configuration that forgot to choose one is
// reported (ErrInvalidPolicy) instead of silently picking a behaviour.
type Policy uint8

const (
	// DropOldest evicts the oldest element to make room and hands it back.
	DropOldest Policy = iota + 1
	// Raise fails at once with ErrFull.
	Raise
	// Block parks the caller until a pop makes room or its context ends.
	Block
)

// ErrFull is returned by Push with the Raise policy when the ring is full.
var ErrFull = errors.New("buffer: full")

// ErrInvalidPolicy is returned by Push when the policy is not one of
// DropOldest, Raise or Block.
var ErrInvalidPolicy = errors.New("buffer: invalid policy")

// String returns "drop-oldest", "raise", "block", or "Policy(n)" for an
// invalid value.
func (p Policy) String() string {
	switch p {
	case DropOldest:
		return "drop-oldest"
	case Raise:
		return "raise"
	case Block:
		return "block"
	}
	return "Policy(" + strconv.Itoa(int(p)) + ")"
}

// Valid reports whether p is DropOldest, Raise or Block.
func (p Policy) Valid() bool { return p >= DropOldest && p <= Block }

// Push appends v, applying policy p when the ring is full.
//
//   - DropOldest: evicts the oldest element and returns it (evicted, true,
//     nil); no element is ever lost without being handed back. The eviction
//     and the insertion are one step, so exactly one element is evicted per
//     call. It never fails and never allocates. Pushes that find room stay
//     lock-free, and so does an eviction while no other goroutine is
//     evicting; concurrent evictions take turns under a small mutex, so
//     evicting producers queue instead of spinning on each other. When
//     another goroutine is half-way through an operation on the slot it
//     needs, it re-reads a few times, then yields the processor
//     (runtime.Gosched), then sleeps for growing intervals capped at a
//     millisecond, so contention never turns into a livelock or a core
//     spinning on a descheduled goroutine.
//   - Raise: returns ErrFull at once.
//   - Block: parks (no spinning) until a pop makes room or ctx ends, and
//     then returns ctx.Err(). If there is room, v is pushed whatever the
//     state of ctx; ctx only bounds the wait. WakeBlocked makes parked
//     pushers re-check.
//
// An invalid policy returns ErrInvalidPolicy, whether or not the ring is
// full, and never panics. ctx is only used by Block; nil is treated as
// context.Background().
func (r *Ring[T]) Push(ctx context.Context, v T, p Policy) (evicted T, didEvict bool, err error) {
	switch p {
	case DropOldest:
		evicted, didEvict = r.pushDropOldest(v)
		return evicted, didEvict, nil
	case Raise:
		if r.TryPush(v) {
			return evicted, false, nil
		}
		return evicted, false, ErrFull
	case Block:
		return evicted, false, r.pushBlock(ctx, v)
	}
	return evicted, false, ErrInvalidPolicy
}

// pushDropOldest pushes v, evicting the oldest element if the ring is full.
//
// Evictions on a full ring all contend for the same three cache lines (head,
// tail and the oldest slot), and evict has a short window (between its CAS on
// head and its store to tail) in which every other evictor can only retry.
// Left lock-free, several producers on a few cores spend most of their time
// bouncing those lines and retrying, and one that is descheduled inside the
// window makes all the others spin. So the overflow path is: a plain push;
// then, only if no one else is evicting, one lock-free eviction attempt (the
// uncontended case stays lock-free and costs no more than before); otherwise
// the slow path, where evictors take turns under evictMu. Under the lock an
// evictor only races with poppers and pushers that found room, never with
// another evictor, and the waiting evictors sleep in the mutex instead of
// spinning on the ring.
func (r *Ring[T]) pushDropOldest(v T) (evicted T, didEvict bool) {
	if r.put(v) == done {
		return evicted, false
	}
	if r.evictors.Load() == 0 {
		if old, st := r.evict(v); st == done {
			return old, true
		}
	}
	return r.pushDropOldestSlow(v)
}

// pushDropOldestSlow is the contended overflow path of pushDropOldest: it
// pushes or evicts under evictMu, backing off while another goroutine (a
// popper, a pusher that claimed the oldest slot, or a lock-free evictor) is
// half-way through an operation on the slot it needs. evictors counts the
// goroutines in here, so that new evictors queue on the mutex instead of
// racing the one that holds it.
func (r *Ring[T]) pushDropOldestSlow(v T) (evicted T, didEvict bool) {
	r.evictors.Add(1)
	r.evictMu.Lock()
	var b backoff
	for {
		if r.put(v) == done {
			break
		}
		old, st := r.evict(v)
		if st == done {
			evicted, didEvict = old, true
			break
		}
		if st == busy {
			b.wait()
		}
	}
	r.evictMu.Unlock()
	r.evictors.Add(-1)
	return evicted, didEvict
}
