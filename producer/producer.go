package producer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/c3ecadf2/lavinmq-go/buffer"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

// Producer publishes to one queue (or exchange and routing key) through a
// lavinmq.Client. It is safe for concurrent use. Goroutines: one publisher,
// started by New and ended by Close (or by the client's Close).
type Producer struct {
	client      *lavinmq.Client
	queue       string
	exchange    string
	key         string
	cfg         config
	hooks       hookSet
	log         *slog.Logger
	ring        *buffer.Ring[envelope]
	epoch       time.Time
	idPrefix    string
	defaultMode uint8
	mandatory   bool

	accepted  atomic.Uint64
	seq       atomic.Uint64 // numbers accepted messages for generated IDs
	_         [56]byte      // keep Publish's counters off the publisher's cache lines
	confirmed atomic.Uint64
	dropped   [numReasons]atomic.Uint64
	resent    atomic.Uint64
	brokerMax atomic.Int64 // max message size learned from the broker; 0 while unknown

	active      atomic.Int64 // Publish calls in progress
	closing     atomic.Bool
	closeCtx    context.Context // cancelled when closing starts: wakes Block publishers
	closeCancel context.CancelFunc
	runCtx      context.Context // cancelled to stop the publisher
	runCancel   context.CancelFunc
	done        chan struct{} // closed when the publisher has ended

	closeOnce sync.Once
	closeErr  error

	// stMu guards st, the publisher's state. The publisher goroutine holds it
	// except inside the network calls that a broker can hold up (a blocked
	// connection is not read: a write or a channel close waits until the
	// alarm clears). When Close's ctx ends while the publisher is inside one,
	// Close takes the state over (orphaned) and reports what is unsettled.
	stMu     sync.Mutex
	st       *pubState
	orphaned bool // set by Close under stMu: the publisher must not touch st again

	flushMu      sync.Mutex
	flushWaiters []flushWaiter
	nWaiters     atomic.Int32
}

type flushWaiter struct {
	target uint64
	ch     chan struct{}
}

// Stats is a snapshot of a producer's counters. Accepted == Confirmed +
// Dropped + Pending holds in every snapshot.
type Stats struct {
	Accepted  uint64                // Publish calls that returned nil
	Confirmed uint64                // acked by the broker (Confirm) or written to the socket (FireAndForget)
	Dropped   uint64                // reported through OnDrop, all reasons
	DroppedBy map[DropReason]uint64 // Dropped by reason
	Resent    uint64                // publications of a message after the first (after a lost channel or a nack)
	Pending   uint64                // accepted, not yet confirmed nor dropped: Buffered + InFlight
	Buffered  int                   // waiting in the buffer
	InFlight  int                   // taken from the buffer, not yet confirmed (on the wire or waiting to be re-sent)
	Capacity  int                   // buffer capacity
}

// New creates a producer for queue on client c and starts its publisher
// goroutine. It does not touch the network.
func New(c *lavinmq.Client, queue string, opts ...Option) (*Producer, error) {
	if c == nil {
		return nil, fmt.Errorf("%w: nil client", ErrInvalidConfig)
	}
	cfg := defaultConfig()
	for _, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("%w: nil option", ErrInvalidConfig)
		}
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	exchange, key := "", queue
	if cfg.routingSet {
		exchange, key = cfg.exchange, cfg.routingKey
	} else if queue == "" {
		return nil, fmt.Errorf("%w: empty queue name (give one, or WithExchange)", ErrInvalidConfig)
	}
	if cfg.declare && queue == "" {
		return nil, fmt.Errorf("%w: WithDeclare needs a queue name", ErrInvalidConfig)
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	p := &Producer{
		client:      c,
		queue:       queue,
		exchange:    exchange,
		key:         key,
		cfg:         cfg,
		hooks:       newHookSet(cfg.hooks),
		log:         cfg.logger.With("queue", queue),
		ring:        buffer.New[envelope](cfg.bufferSize),
		epoch:       time.Now(),
		idPrefix:    hex.EncodeToString(rnd[:]) + "-",
		defaultMode: Persistent,
		mandatory:   cfg.mandatory && cfg.mode == Confirm,
		done:        make(chan struct{}),
	}
	if cfg.mode == FireAndForget {
		p.defaultMode = Transient
	}
	p.closeCtx, p.closeCancel = context.WithCancel(context.Background())
	p.runCtx, p.runCancel = context.WithCancel(context.Background())
	for _, h := range p.hooks.opened {
		h.OnProducerOpened(p)
	}
	p.stMu.Lock() // handed to the publisher, so that Close cannot take over before it has started
	go p.run()
	return p, nil
}

// Queue returns the queue name given to New.
func (p *Producer) Queue() string { return p.queue }

// Publish validates m and puts it in the buffer. It never waits on the
// network: only the Block policy waits, for room in the buffer, until ctx
// ends. A nil error means the message is accepted: it will be confirmed (or
// written) or reported through OnDrop.
func (p *Producer) Publish(ctx context.Context, m Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := p.validate(&m); err != nil {
		return err
	}
	p.active.Add(1)
	defer p.active.Add(-1)
	if p.closing.Load() {
		return ErrClosed
	}
	env := envelope{msg: m, at: int64(time.Since(p.epoch)), seq: p.seq.Add(1)}
	if p.ring.TryPush(env) {
		p.accepted.Add(1)
		return nil
	}
	switch p.cfg.policy {
	case buffer.DropOldest:
		old, evicted, err := p.ring.Push(ctx, env, buffer.DropOldest)
		if err != nil {
			return err
		}
		p.accepted.Add(1)
		if evicted {
			p.drop(&old, Evicted)
		}
		return nil
	case buffer.Block:
		return p.publishBlock(ctx, env)
	}
	return buffer.ErrFull
}

func (p *Producer) publishBlock(ctx context.Context, env envelope) error {
	// The publisher usually frees a slot within microseconds: yield a few
	// times before parking, which saves a park and a wake-up per message
	// when Publish runs ahead of the network.
	for range 16 {
		runtime.Gosched()
		if p.ring.TryPush(env) {
			p.accepted.Add(1)
			return nil
		}
		if p.closing.Load() {
			return ErrClosed
		}
	}
	bctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(p.closeCtx, cancel)
	defer stop()
	if _, _, err := p.ring.Push(bctx, env, buffer.Block); err != nil {
		if p.closing.Load() && ctx.Err() == nil {
			return ErrClosed
		}
		return err
	}
	p.accepted.Add(1)
	return nil
}

func (p *Producer) validate(m *Message) error {
	if max := p.maxSize(); len(m.Body) > max {
		return fmt.Errorf("%w: body of %d bytes, max %d", ErrTooLarge, len(m.Body), max)
	}
	if m.DeliveryMode > Persistent {
		return fmt.Errorf("%w: delivery mode %d (want 0, Transient or Persistent)", ErrInvalidMessage, m.DeliveryMode)
	}
	if m.Priority > 9 {
		return fmt.Errorf("%w: priority %d (AMQP priorities are 0-9)", ErrInvalidMessage, m.Priority)
	}
	for i := 0; i < len(m.Expiration); i++ {
		if c := m.Expiration[i]; c < '0' || c > '9' {
			return fmt.Errorf("%w: expiration %q is not a number of milliseconds", ErrInvalidMessage, m.Expiration)
		}
	}
	return nil
}

func (p *Producer) maxSize() int {
	max := p.cfg.maxMessageSize
	if b := int(p.brokerMax.Load()); b > 0 && b < max {
		max = b
	}
	return max
}

// Flush returns nil once every message accepted before the call is
// confirmed (or written) or dropped, or ctx's error when ctx ends first.
func (p *Producer) Flush(ctx context.Context) error {
	target := p.accepted.Load()
	if p.settled() >= target {
		return nil
	}
	w := flushWaiter{target: target, ch: make(chan struct{})}
	p.flushMu.Lock()
	p.flushWaiters = append(p.flushWaiters, w)
	p.nWaiters.Add(1)
	p.flushMu.Unlock()
	if p.settled() >= target { // settled before we were registered
		p.notifyFlush()
	}
	select {
	case <-w.ch:
		return nil
	case <-ctx.Done():
		p.flushMu.Lock()
		for i, x := range p.flushWaiters {
			if x.ch == w.ch {
				p.flushWaiters = append(p.flushWaiters[:i], p.flushWaiters[i+1:]...)
				p.nWaiters.Add(-1)
				break
			}
		}
		p.flushMu.Unlock()
		if p.settled() >= target {
			return nil
		}
		return fmt.Errorf("producer: flush: %d messages pending: %w", target-min(target, p.settled()), ctx.Err())
	}
}

func (p *Producer) settled() uint64 {
	n := p.confirmed.Load()
	for i := range p.dropped {
		n += p.dropped[i].Load()
	}
	return n
}

// notifyFlush wakes the Flush calls whose target is reached.
func (p *Producer) notifyFlush() {
	if p.nWaiters.Load() == 0 {
		return
	}
	s := p.settled()
	p.flushMu.Lock()
	kept := p.flushWaiters[:0]
	for _, w := range p.flushWaiters {
		if s >= w.target {
			close(w.ch)
			p.nWaiters.Add(-1)
		} else {
			kept = append(kept, w)
		}
	}
	p.flushWaiters = kept
	p.flushMu.Unlock()
}

// Close stops accepting messages (Publish returns ErrClosed), waits until
// everything accepted is confirmed or dropped or ctx ends, then reports
// what is left with reason Shutdown and ends the publisher goroutine. It
// returns nil when nothing had to be dropped. Calling it again returns the
// first call's result.
//
// Close returns within ctx (plus at most 100ms), even while the broker blocks
// the connection (connection.blocked: a memory or disk alarm). A blocked
// broker reads nothing from the socket, so the publisher can be inside a
// socket write or a channel close that cannot finish before the alarm clears.
// When ctx ends Close does not wait for it: it reports every message not yet
// confirmed with reason Shutdown (before it returns) and leaves the publisher
// goroutine to end on its own as soon as that network call returns: when the
// broker reads again, or when the connection is closed (Client.Close closes
// it within its close timeout, which ends such a call). That goroutine touches
// nothing of the producer after Close has returned.
func (p *Producer) Close(ctx context.Context) error {
	p.closeOnce.Do(func() { p.closeErr = p.close(ctx) })
	return p.closeErr
}

// orphanGrace is how long Close waits, after it took the state over, for the
// publisher to leave its network call (it usually does at once).
const orphanGrace = 100 * time.Millisecond

func (p *Producer) close(ctx context.Context) error {
	p.stopAccepting()
	flushErr := p.Flush(ctx)
	p.runCancel()
	select {
	case <-p.done:
	case <-ctx.Done():
		p.takeOver()
		t := time.NewTimer(orphanGrace)
		select {
		case <-p.done:
		case <-t.C:
			p.log.Warn("producer: closed while the publisher waits on the network (is the connection blocked?); it ends when that call returns")
		}
		t.Stop()
	}
	if flushErr != nil {
		return fmt.Errorf("producer: close: unflushed messages reported with reason %s: %w", Shutdown, flushErr)
	}
	return nil
}

// takeOver reports what the publisher has not settled, in its place, unless
// it has ended. It waits for the publisher to be inside a network call (or
// done): every other wait of the publisher ends with runCtx.
func (p *Producer) takeOver() {
	p.stMu.Lock()
	defer p.stMu.Unlock()
	select {
	case <-p.done:
		return
	default:
	}
	p.orphaned = true
	p.shutdown(p.st)
}

// stopAccepting makes Publish return ErrClosed and waits for the Publish
// calls already past that check, so nothing is pushed after the final drain.
func (p *Producer) stopAccepting() {
	p.closing.Store(true)
	p.closeCancel()
	for p.active.Load() > 0 {
		runtime.Gosched()
		time.Sleep(50 * time.Microsecond)
	}
}

// Stats returns a snapshot of the counters.
func (p *Producer) Stats() Stats {
	s := Stats{DroppedBy: make(map[DropReason]uint64, numReasons-1), Capacity: p.ring.Cap()}
	// Done counts first, then accepted: a message is counted accepted before
	// it can be done, except for the instant between its push and the
	// increment, which the clamp below covers.
	for _, r := range DropReasons() {
		n := p.dropped[r].Load()
		s.DroppedBy[r] = n
		s.Dropped += n
	}
	s.Confirmed = p.confirmed.Load()
	s.Resent = p.resent.Load()
	s.Accepted = max(p.accepted.Load(), s.Confirmed+s.Dropped)
	s.Pending = s.Accepted - s.Confirmed - s.Dropped
	s.Buffered = min(p.ring.Len(), int(s.Pending))
	s.InFlight = int(s.Pending) - s.Buffered
	return s
}

// drop reports env as dropped: the callback and hooks first, then the
// counter, so that a Flush that returns has seen every callback.
func (p *Producer) drop(env *envelope, r DropReason) {
	for _, h := range p.hooks.dropped {
		h.OnDropped(p.queue, r)
	}
	if p.cfg.onDrop != nil {
		if env.msg.MessageID == "" {
			env.msg.MessageID = p.newID(env.seq)
		}
		p.callOnDrop(env.msg, r)
	}
	p.dropped[r].Add(1)
	p.notifyFlush()
}

func (p *Producer) callOnDrop(m Message, r DropReason) {
	defer func() {
		if v := recover(); v != nil {
			p.log.Error("producer: OnDrop callback panicked", "panic", v, "reason", r.String())
		}
	}()
	p.cfg.onDrop(m, p.queue, r)
}

func (p *Producer) confirm(env *envelope) {
	if len(p.hooks.confirmed) > 0 {
		lat := time.Duration(int64(time.Since(p.epoch)) - env.at)
		for _, h := range p.hooks.confirmed {
			h.OnConfirmed(p.queue, lat)
		}
	}
	p.confirmed.Add(1)
	p.notifyFlush()
}

func (p *Producer) newID(seq uint64) string {
	return p.idPrefix + strconv.FormatUint(seq, 10)
}
