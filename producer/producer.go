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

	flush flusher
	bud   budget                // the byte budget (WithBufferBytes)
	cause atomic.Pointer[cause] // the last problem the publisher met; nil after a confirm

	unregister func() // takes Close off the client's close list

	// stMu guards st, the publisher's state. The publisher goroutine holds it
	// except inside the network calls that a broker can hold up (a blocked
	// connection is not read: a write or a channel close waits until the
	// alarm clears). When Close's ctx ends while the publisher is inside one,
	// Close takes the state over (orphaned) and reports what is unsettled.
	stMu     sync.Mutex
	st       *pubState
	orphaned bool // set by Close under stMu: the publisher must not touch st again
}

// cause is a problem the publisher met, named by Flush when it times out.
type cause struct{ err error }

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

	// Bytes of the messages counted above (see WithBufferBytes for what a
	// message counts): PendingBytes == BufferedBytes + InFlightBytes <=
	// CapacityBytes in every snapshot. The bytes and the counts are read a
	// moment apart: PendingBytes also holds the bytes a Publish in progress
	// has reserved before it counts the message accepted, and the bytes of a
	// message being settled until just after it is counted settled.
	PendingBytes  int64 // accepted, not yet confirmed nor dropped: what the byte budget bounds
	BufferedBytes int64 // of the messages waiting in the buffer
	InFlightBytes int64 // of the messages taken from the buffer, not yet settled
	CapacityBytes int64 // the byte budget
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
		o.apply(&cfg)
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
	if len(queue) > maxShortString {
		return nil, fmt.Errorf("%w: queue name of %d bytes, AMQP allows at most %d", ErrInvalidConfig, len(queue), maxShortString)
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
	p.flush.wake = make(chan struct{})
	p.bud.init(cfg.bufferBytes, cfg.policy)
	p.closeCtx, p.closeCancel = context.WithCancel(context.Background())
	p.runCtx, p.runCancel = context.WithCancel(context.Background())
	// Closing the client closes the producer first, so that what it holds
	// is settled or reported before the connection goes.
	remove, err := c.AddCloser(p.Close)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrClosed, err)
	}
	p.unregister = remove
	for _, h := range p.hooks.opened {
		p.hookOpened(h)
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
//
// A message that cannot be encoded is refused at once with an error wrapping
// ErrInvalidMessage that names the field: a short string (RoutingKey, MessageID,
// CorrelationID, ReplyTo, ContentType, ContentEncoding, Type, AppID, UserID,
// Expiration) over 255 bytes, a header key over 255 bytes, a header value
// of a type amqp091-go cannot write (see amqp091.Table.Validate; an int
// outside the int32 range is refused too, as amqp091-go would truncate it),
// or properties too large for one AMQP frame.
//
// Publish is asynchronous and does not copy: the producer keeps m.Body and
// m.Headers, and reads them when it publishes and again for every re-send,
// until the message is settled (confirmed, or reported through OnDrop).
// Do not modify or reuse them before then (a pooled buffer given to Publish
// and reused at once corrupts the message); allocate a new slice per message.
func (p *Producer) Publish(ctx context.Context, m Message) error {
	return p.enqueue(ctx, m, nil)
}

// enqueue is Publish; w, when not nil, is told when the message settles.
func (p *Producer) enqueue(ctx context.Context, m Message, w *waiter) error {
	if ctx == nil {
		return fmt.Errorf("%w: nil context", ErrInvalidArgument)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	size, err := p.validate(&m)
	if err != nil {
		return err
	}
	p.active.Add(1)
	defer p.active.Add(-1)
	if p.closing.Load() {
		return ErrClosed
	}
	// Counted pending for Flush before it becomes visible to the publisher;
	// a HookMessage may add headers (counted in size); then the bytes are
	// reserved (the policy applies to them as to the count). All of it is
	// undone when the push fails.
	env := envelope{msg: m, at: int64(time.Since(p.epoch)), seq: p.seq.Add(1), size: size, epoch: p.flush.enter(), waiter: w}
	p.traceStart(ctx, &env)
	if !p.bud.reserve(env.size) {
		if err := p.reserveSlow(ctx, env.size); err != nil {
			p.flush.leave(env.epoch)
			p.traceRefused(&env, err)
			return err
		}
	}
	if p.ring.TryPush(env) {
		p.accepted.Add(1)
		return nil
	}
	switch p.cfg.policy {
	case buffer.DropOldest:
		var old envelope
		var evicted bool
		if old, evicted, err = p.ring.Push(ctx, env, buffer.DropOldest); err == nil {
			p.accepted.Add(1)
			if evicted {
				p.drop(&old, Evicted)
			}
			return nil
		}
	case buffer.Block:
		if err = p.publishBlock(ctx, env); err == nil {
			return nil
		}
	default:
		err = buffer.ErrFull
	}
	p.bud.release(env.size)
	p.flush.leave(env.epoch)
	p.traceRefused(&env, err)
	return err
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

func (p *Producer) maxSize() int {
	max := p.cfg.maxMessageSize
	if b := int(p.brokerMax.Load()); b > 0 && b < max {
		max = b
	}
	return max
}

// Flush returns nil once every message accepted before the call (every
// Publish that returned nil before Flush was called) has settled: confirmed
// by the broker (written to the socket in FireAndForget) or dropped and
// reported through OnDrop, in whatever order they settle. Messages accepted
// while Flush waits may be waited for too. When ctx ends first, Flush returns
// an error that wraps ctx's error and, when the producer met a problem since
// its last confirm, that problem (for example the broker's *amqp091.Error
// 404 NOT_FOUND for a missing exchange, reachable with errors.As).
func (p *Producer) Flush(ctx context.Context) error {
	if ctx == nil {
		return fmt.Errorf("%w: nil context", ErrInvalidArgument)
	}
	n, err := p.flush.flush(ctx)
	if err == nil {
		return nil
	}
	return p.pendingErr(fmt.Sprintf("producer: flush: %d messages pending", n), err)
}

// noteCause records a problem for Flush's error.
func (p *Producer) noteCause(err error) { p.cause.Store(&cause{err: err}) }

// Close stops accepting messages (Publish returns ErrClosed), waits until
// everything accepted has settled (confirmed, or dropped and reported) or ctx
// ends, then reports what is left with reason Shutdown and ends the publisher
// goroutine.
//
// It returns nil when every accepted message settled without a Shutdown drop.
// Messages dropped earlier for other reasons (Unroutable, Nacked, Evicted,
// TooLarge, Invalid) were reported through OnDrop when they happened and do
// not make Close fail. It returns an error wrapping ErrDropped, with the count,
// when it had to drop messages with reason Shutdown: because ctx ended first
// (the error wraps ctx's error too), or because the client was closed under
// the producer. Calling it again returns the first call's result.
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
	if ctx == nil {
		return fmt.Errorf("%w: nil context", ErrInvalidArgument)
	}
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
	p.unregister()
	n := p.dropped[Shutdown].Load()
	switch {
	case n == 0:
		return nil
	case flushErr != nil:
		return fmt.Errorf("%w: close: %d with reason %s: %w", ErrDropped, n, Shutdown, flushErr)
	default:
		return fmt.Errorf("%w: close: %d with reason %s: the client was closed first", ErrDropped, n, Shutdown)
	}
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
	// held before taken: taken is a part of held, so read in this order a
	// settle or a take between the loads cannot make taken exceed held.
	s.CapacityBytes = p.bud.limit
	s.PendingBytes = max(p.bud.held.Load(), 0)
	s.InFlightBytes = min(max(p.bud.taken.Load(), 0), s.PendingBytes)
	s.BufferedBytes = s.PendingBytes - s.InFlightBytes
	return s
}

// drop reports env as dropped: the callback and hooks first, then the
// counters, so that a Flush that returns has seen every callback.
func (p *Producer) drop(env *envelope, r DropReason) {
	for _, h := range p.hooks.dropped {
		p.hookDropped(h, r)
	}
	p.traceSettled(env, r)
	if p.cfg.onDrop != nil || env.waiter != nil {
		if env.msg.MessageID == "" {
			env.msg.MessageID = p.newID(env.seq)
		}
		if env.msg.RoutingKey == "" {
			env.msg.RoutingKey = p.routingKey()
		}
	}
	if p.cfg.onDrop != nil {
		p.callOnDrop(env.msg, r)
	}
	p.dropped[r].Add(1)
	p.settled(env)
	p.flush.leave(env.epoch)
	if env.waiter != nil {
		env.waiter.settle(p.dropError(&env.msg, r))
	}
}

// routingKey is the producer's own routing key: WithExchange's, or the
// queue's current name on the default exchange.
func (p *Producer) routingKey() string {
	if p.cfg.routingSet {
		return p.key
	}
	return p.client.QueueName(p.queue)
}

func (p *Producer) callOnDrop(m Message, r DropReason) {
	defer p.recoverHook("OnDrop")
	p.cfg.onDrop(m, p.queue, r)
}

// confirm settles env: acked by the broker (Confirm mode, HookConfirmed
// with its latency) or handed to the socket (FireAndForget, HookWritten).
func (p *Producer) confirm(env *envelope) {
	if p.cfg.mode == FireAndForget {
		for _, h := range p.hooks.written {
			p.hookWritten(h)
		}
	} else if len(p.hooks.confirmed) > 0 {
		lat := time.Duration(int64(time.Since(p.epoch)) - env.at)
		for _, h := range p.hooks.confirmed {
			p.hookConfirmed(h, lat)
		}
	}
	p.traceSettled(env, 0)
	p.confirmed.Add(1)
	if p.cause.Load() != nil {
		p.cause.Store(nil)
	}
	p.settled(env)
	p.flush.leave(env.epoch)
	if env.waiter != nil {
		env.waiter.settle(nil)
	}
}

func (p *Producer) newID(seq uint64) string {
	return p.idPrefix + strconv.FormatUint(seq, 10)
}
