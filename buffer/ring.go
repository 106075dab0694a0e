package buffer

import (
	"math/bits"
	"sync"
	"sync/atomic"
)

// cacheLine is the padding unit between hot atomics. 128 bytes rather than 64
// because x86 prefetches cache lines in adjacent pairs.
const cacheLine = 128

// maxCapacity keeps positions (lap bits + index bits) far from overflow.
const maxCapacity = 1 << 48

// slot is one cell of the ring. seq is its stamp (Vyukov's per-cell sequence
// number, in the lap encoding described on Ring):
//
//	seq == pos        empty, ready for the push at position pos
//	seq == pos+1      holds the element pushed at pos, ready for the pop at pos
//	seq == pos+oneLap released by the pop at pos, ready for the push one lap later
type slot[T any] struct {
	seq atomic.Uint64
	val T
}

// Ring is a bounded FIFO queue of T that any number of goroutines can push
// to and pop from at once. It holds exactly Cap() elements, all allocated by
// New: TryPush and TryPop never allocate, never lock and never block. Push
// applies an overflow Policy when the ring is full (DropOldest, Raise,
// Block), and NotEmpty lets a consumer sleep until there is something to
// pop. A popped element is cleared from the ring, which keeps no reference
// to it. All methods are safe for concurrent use.
type Ring[T any] struct {
	// Implementation: Dmitry Vyukov's bounded MPMC queue, a sequence stamp
	// per slot. Positions (head, tail and stamps) are encoded as lap|index,
	// where lap is a multiple of oneLap, the smallest power of two above the
	// capacity (the layout of crossbeam's ArrayQueue): index and lap are split
	// with a mask, so the array holds exactly the requested capacity with no
	// division on the hot path. The fields are grouped by who writes them,
	// each group on its own cache lines: tail (pushers), head (poppers),
	// read-only layout, sleep flags (written only when a goroutine goes to
	// sleep), the Block parking lot, and the DropOldest eviction lock
	// (touched only when the ring is full).
	_    [cacheLine]byte
	tail atomic.Uint64 // next position to push
	_    [cacheLine - 8]byte
	head atomic.Uint64 // next position to pop
	_    [cacheLine - 8]byte

	slots    []slot[T]
	mask     uint64 // oneLap - 1: the index bits of a position
	oneLap   uint64
	capacity uint64
	notEmpty chan struct{} // capacity 1: the consumer's wake-up token
	_        [cacheLine]byte

	sleeping atomic.Uint32 // 1 while a consumer may be waiting on notEmpty
	parked   atomic.Int32  // pushers parked by the Block policy
	_        [cacheLine - 8]byte

	mu      sync.Mutex    // guards notFull
	notFull chan struct{} // closed (broadcast) by a pop when pushers are parked
	_       [cacheLine - 16]byte

	evictMu  sync.Mutex   // serialises contended DropOldest evictions (policy.go)
	evictors atomic.Int32 // goroutines in the contended eviction path
	_        [cacheLine - 12]byte
}

// New returns a ring that holds exactly capacity elements. All slots are
// allocated here and none later. Like make, New panics if capacity is less
// than 1.
func New[T any](capacity int) *Ring[T] {
	if capacity < 1 {
		panic("buffer: capacity must be at least 1")
	}
	if capacity > maxCapacity {
		panic("buffer: capacity too large")
	}
	oneLap := uint64(1) << bits.Len64(uint64(capacity)) // smallest power of two > capacity
	r := &Ring[T]{
		slots:    make([]slot[T], capacity),
		mask:     oneLap - 1,
		oneLap:   oneLap,
		capacity: uint64(capacity),
		notEmpty: make(chan struct{}, 1),
	}
	for i := range r.slots {
		r.slots[i].seq.Store(uint64(i))
	}
	return r
}

// Cap returns the number of elements the ring can hold, as passed to New.
func (r *Ring[T]) Cap() int { return int(r.capacity) }

// Len returns the number of elements in the ring. Under concurrent use it is
// a snapshot that may be stale by the time it returns.
func (r *Ring[T]) Len() int {
	for {
		tail := r.tail.Load()
		head := r.head.Load()
		if r.tail.Load() != tail {
			continue // tail and head must belong to one moment
		}
		hi, ti := head&r.mask, tail&r.mask
		switch {
		case hi < ti:
			return int(ti - hi)
		case hi > ti:
			return int(r.capacity - hi + ti)
		case tail == head:
			return 0
		default:
			return int(r.capacity)
		}
	}
}

// TryPush appends v if there is room and reports whether it did. It never
// blocks, never waits for another goroutine and never allocates. It returns
// false when the ring is full, including the instant when the only slot it
// may use is still being emptied by a concurrent pop (that pop wakes Block
// pushers when it finishes).
func (r *Ring[T]) TryPush(v T) bool {
	return r.put(v) == done
}

// TryPop removes and returns the oldest element. It returns the zero value
// and false when the ring is empty, including the instant when the oldest
// element has been claimed by a concurrent push that has not yet written it
// (that push signals NotEmpty when it does). The slot is cleared, so the ring
// keeps no reference to a popped value. It never blocks, never waits for
// another goroutine and never allocates.
func (r *Ring[T]) TryPop() (T, bool) {
	v, st := r.take()
	return v, st == done
}

// status is the outcome of one attempt of an internal operation.
type status uint8

const (
	done  status = iota // the operation happened
	full                // no free slot at tail (push)
	empty               // no published element at head (pop)
	busy                // another goroutine is half-way through an operation on the slot we need (evict)
	retry               // the ring changed under us: try again at once (evict)
)

// next returns the position after pos: the next index, or index 0 of the next lap.
func (r *Ring[T]) next(pos uint64) uint64 {
	if pos&r.mask+1 < r.capacity {
		return pos + 1
	}
	return pos&^r.mask + r.oneLap
}

// put appends v if the slot at tail is free: done or full. It does not look
// at head (the poppers' cache line): a slot of the previous lap that is not
// yet released means full, as in Vyukov's original. A lost race with another
// pusher is retried at once, since it means that pusher made progress.
func (r *Ring[T]) put(v T) status {
	tail := r.tail.Load()
	for {
		s := &r.slots[tail&r.mask]
		seq := s.seq.Load()
		if seq == tail { // empty slot for this lap: claim it
			if r.tail.CompareAndSwap(tail, r.next(tail)) {
				s.val = v
				s.seq.Store(tail + 1) // publish (sequentially consistent, see wait.go)
				if r.sleeping.Load() != 0 {
					r.wakeConsumer()
				}
				return done
			}
		} else if int64(seq-tail) < 0 {
			// The slot still belongs to the previous lap: its element is
			// not popped yet, or its pop (or eviction) is in flight.
			return full
		}
		tail = r.tail.Load()
	}
}

// take removes the oldest element if it is published: done or empty. Like
// put, it does not look at the other side's index.
func (r *Ring[T]) take() (v T, st status) {
	head := r.head.Load()
	for {
		s := &r.slots[head&r.mask]
		seq := s.seq.Load()
		if seq == head+1 { // filled for this lap: claim it
			if r.head.CompareAndSwap(head, r.next(head)) {
				v = s.val
				var zero T
				s.val = zero                 // keep nothing alive
				s.seq.Store(head + r.oneLap) // release for the next lap
				if r.parked.Load() != 0 {
					r.wakeBlocked()
				}
				return v, done
			}
		} else if int64(seq-(head+1)) < 0 {
			// Not filled for this lap: nothing pushed, or the push is in flight.
			return v, empty
		}
		head = r.head.Load()
	}
}

// evict replaces the oldest element of a full ring by v in one step and
// returns the element it replaced. When the ring is full, the oldest element
// and the next free position share one slot; evict claims that slot by
// advancing head (a CAS that also settles any race with poppers and other
// evictors), then advances tail, which no one else can move while the slot is
// held, and publishes v. The slot never looks free in between, so no pusher
// can slip in and make a second eviction necessary, and no element is lost
// without being returned.
func (r *Ring[T]) evict(v T) (old T, st status) {
	tail := r.tail.Load()
	s := &r.slots[tail&r.mask]
	seq := s.seq.Load()
	if int64(seq-tail) >= 0 {
		return old, retry // room (or a stale view): push again
	}
	head := r.head.Load()
	if head+r.oneLap != tail || seq != head+1 {
		if r.tail.Load() != tail {
			return old, retry
		}
		// Either a pop/eviction is in flight, or the ring is full and its
		// oldest element is still being written by a descheduled pusher.
		return old, busy
	}
	if !r.head.CompareAndSwap(head, r.next(head)) {
		return old, retry // a pop or another eviction won
	}
	old = s.val
	r.tail.Store(r.next(tail))
	s.val = v
	s.seq.Store(tail + 1)
	if r.sleeping.Load() != 0 {
		r.wakeConsumer()
	}
	if r.parked.Load() != 0 {
		// A Block pusher may have seen this slot held and parked while a
		// concurrent pop freed the next one.
		r.wakeBlocked()
	}
	return old, done
}
