package consumer

import (
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// streamOffsetOf returns the x-stream-offset header of a stream delivery, or -1.
func streamOffsetOf(h amqp.Table) int64 {
	switch v := h["x-stream-offset"].(type) {
	case int64:
		return v
	case int32:
		return int64(v)
	case uint32:
		return int64(v)
	}
	return -1
}

// streamState records, for a stream consumer, which offsets of the current
// session were taken, finished or skipped, to find the resume point: the
// lowest offset not finished. Guarded by mu; the pump adds, the handler
// goroutines finish, Run's goroutine resumes. Events of an older session are
// ignored: the new one delivers those offsets again.
type streamState struct {
	mu      sync.Mutex
	cur     *session
	from    any           // where the current session started (the option, then int64)
	pending map[int64]int // taken, not finished (a count: a stream may repeat)
	done    int64         // highest offset finished; -1 none
	skipped int64         // lowest offset taken and not handled; -1 none
	settled int64         // last offset finished with every earlier one; -1 unknown
	any     bool          // something was taken on the current session
	started time.Time     // first subscribe, for "next" and "last"
}

func newStreamState(from any) *streamState {
	return &streamState{from: from, pending: make(map[int64]int), done: -1, skipped: -1, settled: -1}
}

// resumeLocked returns the offset after the last one finished in order, or
// -1 if nothing was taken on the current session.
func (st *streamState) resumeLocked() int64 {
	if !st.any {
		return -1
	}
	next := st.done + 1
	if st.done < 0 {
		next = -1
	}
	low := func(o int64) {
		if o >= 0 && (next < 0 || o < next) {
			next = o
		}
	}
	for o := range st.pending {
		low(o)
	}
	low(st.skipped)
	return next
}

// start is called before each subscribe: it returns the x-stream-offset to
// subscribe from and makes s the current session.
func (st *streamState) start(s *session) any {
	st.mu.Lock()
	defer st.mu.Unlock()
	if next := st.resumeLocked(); next >= 0 {
		st.from = next
		st.settled = next - 1
	} else if w, ok := st.from.(string); ok && (w == "next" || w == "last") {
		if st.cur == nil {
			st.started = time.Now()
		} else {
			// Lost before anything arrived: "next" again would skip what
			// was published meanwhile. Resume from the first subscribe's
			// time instead (seconds, as the broker keeps it, less a second
			// for clock skew): a few duplicates, never a loss.
			st.from = st.started.Truncate(time.Second).Add(-time.Second)
		}
	}
	st.cur = s
	clear(st.pending)
	st.done, st.skipped, st.any = -1, -1, false
	return st.from
}

func (k *Consumer) streamTake(s *session, d *amqp.Delivery) {
	st := k.stream
	if st == nil {
		return
	}
	off := streamOffsetOf(d.Headers)
	if off < 0 {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.cur != s {
		return
	}
	st.pending[off]++
	st.any = true
}

// streamDone records that j's handler finished (handled) or that j was
// dropped without running it.
func (k *Consumer) streamDone(j job, handled bool) {
	st := k.stream
	if st == nil {
		return
	}
	off := streamOffsetOf(j.d.Headers)
	if off < 0 {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.cur != j.s {
		return
	}
	if n := st.pending[off]; n > 1 {
		st.pending[off] = n - 1
	} else {
		delete(st.pending, off)
	}
	if !handled {
		if st.skipped < 0 || off < st.skipped {
			st.skipped = off
		}
		return
	}
	st.done = max(st.done, off)
	if next := st.resumeLocked(); next > 0 {
		st.settled = max(st.settled, next-1)
	}
}

// StreamOffset returns, for a stream consumer (WithStreamOffset), the offset
// of the last delivery settled with every earlier one (the handler finished on
// it), and false before there is one. Store it and pass it+1 to
// WithStreamOffset on the next start to resume right after it (RabbitMQ and
// LavinMQ number differently, from 0 and from 1, but each takes back the
// numbers it gave, so offset+1 is right on both).
func (k *Consumer) StreamOffset() (int64, bool) {
	st := k.stream
	if st == nil {
		return 0, false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.settled, st.settled >= 0
}
