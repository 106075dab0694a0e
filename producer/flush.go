package producer

import (
	"context"
	"sync"
	"sync/atomic"
)

// flusher makes Flush exact: it returns only when every message accepted
// before the call has settled, whatever order they settle in (a nacked
// message re-sent after later ones were confirmed, evictions, drops).
//
// Messages are counted in two slots by the parity of the epoch they were
// accepted in: Publish adds one to the current epoch's slot before the
// message becomes visible to the publisher (and takes it back if the push
// fails); settling takes it away. Flush moves the epoch on, so that the slot
// of the epoch it waits for gets no new messages, and waits for that slot to
// reach zero. Before moving the epoch from e to e+1 it waits for the slot of
// e+1 (the one e-1 used) to drain, so a slot is never shared by two live
// epochs and a Flush cannot starve under a steady stream of Publish calls.
// A Publish that read the epoch just before a Flush moved it is counted in a
// slot that Flush or a later one waits for: it is concurrent with the Flush,
// so either outcome is correct. The hot path is one atomic load and one add.
type flusher struct {
	epoch   atomic.Uint64
	pending [2]atomic.Int64
	waiting atomic.Int32 // Flush calls in progress: settling wakes them only then

	mu   sync.Mutex
	wake chan struct{} // closed and replaced when a slot reaches zero
}

// enter counts one message in the current epoch and returns its slot.
func (f *flusher) enter() uint8 {
	e := uint8(f.epoch.Load() & 1)
	f.pending[e].Add(1)
	return e
}

// leave settles one message of slot e.
func (f *flusher) leave(e uint8) {
	if f.pending[e].Add(-1) == 0 && f.waiting.Load() > 0 {
		f.mu.Lock()
		close(f.wake)
		f.wake = make(chan struct{})
		f.mu.Unlock()
	}
}

// flush waits until every message counted before the call has left, and
// returns how many were still pending when ctx ended (with ctx's error).
func (f *flusher) flush(ctx context.Context) (int64, error) {
	f.waiting.Add(1)
	defer f.waiting.Add(-1)
	e := f.epoch.Load()
	if n, err := f.drain(ctx, uint8((e+1)&1)); err != nil {
		return n + max(f.pending[e&1].Load(), 0), err
	}
	// Another Flush may have moved the epoch meanwhile: then the slot of e
	// gets no new messages either, and waiting for it is enough.
	f.epoch.CompareAndSwap(e, e+1)
	return f.drain(ctx, uint8(e&1))
}

// drain waits until slot e is zero or ctx ends.
func (f *flusher) drain(ctx context.Context, e uint8) (int64, error) {
	for {
		f.mu.Lock()
		wake := f.wake
		f.mu.Unlock()
		n := f.pending[e].Load()
		if n <= 0 {
			return 0, nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return max(f.pending[e].Load(), 0), ctx.Err()
		}
	}
}
