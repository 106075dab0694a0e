package producer

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/c3ecadf2/lavinmq-go/buffer"
)

// DefaultBufferBytes is the default byte budget (WithBufferBytes): 16 MiB
// for the messages a producer holds, buffered and in flight together.
//
// Why 16 MiB: what a producer holds is live heap, and Go's collector lets
// the heap grow to about twice the live heap before it collects (GOGC=100),
// so a budget B costs up to about 2B of memory on top of the process's own.
// Measured with 256 KiB bodies published as fast as the broker takes them
// (bench/, payload sweep, alternating in one run), the process peaks at
// 75-105 MiB with 16 MiB (median 80-90), 105-190 MiB with 32 MiB, 170-200
// MiB with 64 MiB and 530-830 MiB without a byte budget, against 30-75 MiB
// (median 35) for the raw amqp091-go loop, at the same throughput: 16 MiB
// in flight (64 messages of 256 KiB) keeps a broker on the same host busy.
// So the producer stays near its budget plus twice what the raw loop takes,
// and far inside a 512 MiB container. During an outage it holds the 10 000 messages of the
// count limit (WithBufferSize) up to 1.6 KiB each, 1 024 of 16 KiB or 64 of
// 256 KiB: raise it for long outages with large messages, by what the host
// can give (about twice the increase).
const DefaultBufferBytes int64 = 16 << 20

// ErrBytesFull is returned by Publish when a message does not fit in the
// byte budget (WithBufferBytes) under the Raise policy, or under DropOldest
// when nothing buffered is left to evict (what is left is on the wire or
// waiting to be re-sent, which cannot be taken back). It wraps
// buffer.ErrFull, so errors.Is(err, buffer.ErrFull) holds for either limit:
// a full buffer of messages returns buffer.ErrFull itself.
var ErrBytesFull error = bytesFullError{}

type bytesFullError struct{}

func (bytesFullError) Error() string { return "producer: byte budget full" }
func (bytesFullError) Unwrap() error { return buffer.ErrFull }

// budget counts the bytes of accepted, unsettled messages (see messageSize)
// against the limit of WithBufferBytes.
//
// held is reserved by Publish (a CAS loop that never lets it pass limit, so
// every snapshot is within the budget) before the message is pushed, and
// released when the message settles, by whichever goroutine settles it: the
// publisher (confirm, drop), a Publish that evicts, or Close. taken is the
// part of held that the publisher has taken from the ring (on the wire,
// stashed or waiting to be re-sent); only the publisher, or Close under stMu
// once it has taken the state over, writes it.
type budget struct {
	held atomic.Int64
	_    [56]byte // Publish's CAS off the publisher's line
	// taken is read by Stats and written by the owner of the publisher's
	// state (it moves under stMu with the envelopes it counts).
	taken atomic.Int64
	_     [56]byte

	limit int64
	// takeCap bounds taken: the publisher takes no message from the ring
	// while taken is at or over it. Under DropOldest it is half the budget,
	// so that at least half stays for the buffer, where Publish can evict;
	// otherwise it is the budget (the publisher may put all of it on the wire).
	takeCap int64

	waiting atomic.Int32 // Publish calls waiting for bytes (Block)
	mu      sync.Mutex
	wake    chan struct{} // closed and replaced by a release while someone waits
}

func (b *budget) init(limit int64, policy buffer.Policy) {
	b.limit, b.takeCap = limit, limit
	if policy == buffer.DropOldest {
		b.takeCap = max(limit/2, 1)
	}
	b.wake = make(chan struct{})
}

// reserve counts n bytes if they fit and reports whether they did.
func (b *budget) reserve(n int64) bool {
	for {
		cur := b.held.Load()
		if n > b.limit-cur {
			return false
		}
		if b.held.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

// release gives back n bytes and wakes the Publish calls waiting for them.
func (b *budget) release(n int64) {
	b.held.Add(-n)
	if b.waiting.Load() > 0 {
		b.broadcast()
	}
}

func (b *budget) broadcast() {
	b.mu.Lock()
	close(b.wake)
	b.wake = make(chan struct{})
	b.mu.Unlock()
}

// messageSize is what a message counts against the byte budget: the body,
// the short strings (routing key and properties), and the header table as
// it is encoded (keys and values; hsize, from tableSize). A MessageID the
// producer generates is not counted (a few dozen bytes).
func messageSize(m *Message, hsize int) int64 {
	return int64(len(m.Body)+len(m.RoutingKey)+len(m.MessageID)+len(m.CorrelationID)+len(m.ReplyTo)+
		len(m.ContentType)+len(m.ContentEncoding)+len(m.Type)+len(m.AppID)+len(m.UserID)+len(m.Expiration)) + int64(hsize)
}

// reserveSlow makes room for n bytes when they do not fit at once, by the
// policy: DropOldest evicts buffered messages (oldest first, each reported
// with reason Evicted) until they fit, Raise fails with ErrBytesFull, Block
// waits until enough bytes settle or ctx (or Close) ends.
func (p *Producer) reserveSlow(ctx context.Context, n int64) error {
	switch p.cfg.policy {
	case buffer.DropOldest:
		for tries := 0; ; {
			if p.bud.reserve(n) {
				return nil
			}
			old, ok := p.ring.TryPop()
			if ok {
				p.drop(&old, Evicted)
				continue
			}
			// Empty, or its oldest element is still being written by a
			// concurrent push: re-check a bounded number of times.
			if tries++; p.ring.Len() == 0 || tries > 1000 {
				return p.bytesFull(n, "nothing buffered is left to evict; the rest is on the wire or waiting to be re-sent")
			}
			runtime.Gosched()
		}
	case buffer.Block:
		return p.waitBytes(ctx, n)
	}
	return p.bytesFull(n, "")
}

func (p *Producer) bytesFull(n int64, why string) error {
	if why != "" {
		why = ": " + why
	}
	return fmt.Errorf("%w: a message of %d bytes does not fit (%d of %d held)%s", ErrBytesFull, n, p.bud.held.Load(), p.bud.limit, why)
}

// waitBytes reserves n bytes, waiting for releases until ctx ends or the
// producer closes. Registering in waiting before each check means a release
// either is seen by the check or wakes the wait.
func (p *Producer) waitBytes(ctx context.Context, n int64) error {
	b := &p.bud
	b.waiting.Add(1)
	defer b.waiting.Add(-1)
	for {
		b.mu.Lock()
		wake := b.wake
		b.mu.Unlock()
		if b.reserve(n) {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			if b.reserve(n) {
				return nil
			}
			return ctx.Err()
		case <-p.closeCtx.Done():
			return ErrClosed
		}
	}
}

// settled releases the bytes of env, which has just settled.
func (p *Producer) settled(env *envelope) {
	if env.taken {
		p.bud.taken.Add(-env.size)
	}
	p.bud.release(env.size)
}

// take pops the next message from the ring for the publisher, unless the
// bytes it has taken are at the cap (see budget.takeCap); it counts them.
func (p *Producer) take() (envelope, bool) {
	if !p.canTake() {
		return envelope{}, false
	}
	env, ok := p.ring.TryPop()
	if ok {
		env.taken = true
		p.bud.taken.Add(env.size)
	}
	return env, ok
}

// canTake reports whether the publisher may take a message from the ring:
// always when it holds none, else while what it holds is under the cap.
func (p *Producer) canTake() bool {
	t := p.bud.taken.Load()
	return t == 0 || t < p.bud.takeCap
}
