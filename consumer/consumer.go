package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

// Consumer consumes one queue through a lavinmq.Client and subscribes again,
// by itself, after every lost connection, channel error or broker-side
// cancel. It is safe for concurrent use; Run may be active once at a time.
//
// Goroutines: Run's own goroutine owns the subscription (it opens, watches and
// closes the channel of each session); Run starts the handler goroutines
// (workers) and waits for them before it returns. Close only signals and waits.
type Consumer struct {
	client  *lavinmq.Client
	queue   string
	cfg     cfg
	log     *slog.Logger
	tagBase string // prefix-<random>; the tag of each subscription adds -<n>
	tagSeq  atomic.Uint64

	closeCtx    context.Context // cancelled by Close
	closeCancel context.CancelFunc
	// abandon is cancelled when a Close's ctx ends: the handlers' ctx is
	// cancelled and Run stops waiting for the broker.
	abandon       context.Context
	abandonCancel context.CancelFunc

	unregister func()      // takes Close off the client's close list
	byClient   atomic.Bool // Close came from the client's Close

	mu      sync.Mutex
	runDone chan struct{} // closed when the active Run returns; nil when none is active

	stats  counters
	failed failures     // own failure record for WithMaxRedeliveries
	stream *streamState // nil unless WithStreamOffset

	subMu  sync.Mutex
	subErr error // the last subscribe attempt's error; nil once subscribed
}

type counters struct {
	delivered, acked, nackedRequeue, nackedDiscard atomic.Uint64
	panics, staleAcks, resubscribes                atomic.Uint64
	discarded, handedBack, ackFrames               atomic.Uint64
	inFlight                                       atomic.Int64
}

// Stats is a snapshot of a Consumer's counters.
type Stats struct {
	Delivered uint64 // deliveries handed to the handler
	// Acked, NackedRequeue and NackedDiscard count Actions (one per
	// delivery) written on the delivery's channel while it was open, and found
	// still open right after the write. An Action written just before a
	// connection dies may still be lost on the way (the broker then
	// redelivers): at-least-once. With ack coalescing (WithAckBatch) an Ack
	// counts when the frame that covers it is written, up to the batch's
	// delay after the handler returned.
	Acked         uint64
	NackedRequeue uint64 // NackRequeue sent (including panics, unless WithRequeueOnPanic(false))
	NackedDiscard uint64 // NackDiscard sent by the handler's choice (or a panic with WithRequeueOnPanic(false))
	Discarded     uint64 // NackDiscard sent by WithMaxRedeliveries (not in NackedDiscard)
	HandedBack    uint64 // prefetched deliveries no handler started, requeued at shutdown
	Panics        uint64 // handler panics recovered
	StaleAcks     uint64 // Actions dropped because the delivery's channel was gone; the broker redelivers
	AckFrames     uint64 // basic.ack frames written: Acked / AckFrames is the coalescing achieved (see WithAckBatch)
	Resubscribes  uint64 // subscriptions made again after the first one
	InFlight      int    // handlers running now
}

// session is one subscription: a channel with its consumer. Deliveries
// remember the session they came on, and their Action is applied on its
// channel only, never on a later one (a foreign delivery tag is a 406 that
// closes the channel).
type session struct {
	ctx        context.Context // cancelled by endSession: the handlers of its deliveries stop
	cancel     context.CancelFunc
	cn         *lavinmq.Conn
	ch         *amqp.Channel
	tag        string
	deliveries <-chan amqp.Delivery
	closes     chan *amqp.Error // buffered: amqp091 sends at most one error, then closes it
	cancels    chan string      // buffered: one consumer per channel, so at most one basic.cancel
	dead       atomic.Bool      // set by Run's goroutine before it closes ch
	held       *job             // taken by the pump and not handed over when Run stopped; Run's goroutine only
	acks       *acker           // coalesces the channel's acks; nil when WithAckBatch is 1 (each ack on its own)

	hOnce sync.Once       // makes hctx
	hctx  context.Context // parent of the handlers' ctx: Run's handler ctx, cancelled too when the session ends
}

// handlerParent returns the parent of the ctx of s's handlers: hctx (Run's
// handler ctx), cancelled too when s ends. It is made once per session, so
// that each delivery costs one context.WithCancel, not a second AfterFunc.
func (s *session) handlerParent(hctx context.Context) context.Context {
	s.hOnce.Do(func() {
		ctx, cancel := context.WithCancel(hctx)
		context.AfterFunc(s.ctx, cancel) // endSession cancels s.ctx: no registration outlives s
		s.hctx = ctx
	})
	return s.hctx
}

// live reports whether Actions can still be applied on the session's channel.
func (s *session) live() bool {
	if s.dead.Load() {
		return false
	}
	select {
	case <-s.cn.Done():
		return false
	default:
		return true
	}
}

type job struct {
	s *session
	d amqp.Delivery
}

// New validates the options and returns a Consumer of queue on c. It does not
// talk to the broker: Run subscribes.
func New(c *lavinmq.Client, queue string, opts ...Option) (*Consumer, error) {
	if c == nil {
		return nil, fmt.Errorf("%w: nil client", ErrInvalidConfig)
	}
	if queue == "" {
		return nil, fmt.Errorf("%w: empty queue name", ErrInvalidConfig)
	}
	if len(queue) > 255 {
		return nil, fmt.Errorf("%w: queue name longer than 255 bytes", ErrInvalidConfig)
	}
	cf := defaultConfig()
	for _, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("%w: nil option", ErrInvalidConfig)
		}
		o.apply(&cf)
	}
	if err := cf.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	actx, acancel := context.WithCancel(context.Background())
	k := &Consumer{
		client:        c,
		queue:         queue,
		cfg:           cf,
		log:           cf.logger.With("queue", queue),
		tagBase:       cf.tagPrefix + "-" + strconv.FormatUint(rand.Uint64(), 36),
		closeCtx:      ctx,
		closeCancel:   cancel,
		abandon:       actx,
		abandonCancel: acancel,
	}
	if cf.streamSet {
		k.stream = newStreamState(cf.streamOffset)
	}
	// Closing the client closes the consumer first: Run lets its handlers
	// finish and applies their Actions before the connection goes.
	remove, err := c.AddCloser(func(ctx context.Context) error {
		k.byClient.Store(true)
		return k.Close(ctx)
	})
	if err != nil {
		cancel()
		acancel()
		return nil, fmt.Errorf("%w: %w", ErrClosed, err)
	}
	k.unregister = remove
	return k, nil
}

// Queue returns the name of the queue consumed.
func (k *Consumer) Queue() string { return k.queue }

// Stats returns a snapshot of the counters.
func (k *Consumer) Stats() Stats {
	return Stats{
		Delivered:     k.stats.delivered.Load(),
		Acked:         k.stats.acked.Load(),
		NackedRequeue: k.stats.nackedRequeue.Load(),
		NackedDiscard: k.stats.nackedDiscard.Load(),
		Discarded:     k.stats.discarded.Load(),
		HandedBack:    k.stats.handedBack.Load(),
		Panics:        k.stats.panics.Load(),
		StaleAcks:     k.stats.staleAcks.Load(),
		AckFrames:     k.stats.ackFrames.Load(),
		Resubscribes:  k.stats.resubscribes.Load(),
		InFlight:      int(k.stats.inFlight.Load()),
	}
}

// Run subscribes to the queue and calls h for every delivery, on up to
// min(concurrency, prefetch) goroutines, applying the Action h returns. It
// subscribes again after every loss. It blocks until ctx ends (and returns
// ctx.Err()) or Close is called (and returns nil), and in both cases hands
// back at once (nack with requeue) the prefetched deliveries no handler has
// started, and returns after the handlers in flight have finished and their
// Actions have been applied. If the Client is closed under it, Run returns an
// error wrapping lavinmq.ErrClosed; if the broker refuses WithDeclare's
// declaration as inequivalent, an error wrapping ErrDeclare.
//
// Stopping: Close(ctx) is the clean stop (Run returns nil, as
// http.Server.Shutdown makes ListenAndServe return ErrServerClosed); cancelling
// Run's ctx is a normal end too, and Run then returns ctx.Err()
// (context.Canceled or context.DeadlineExceeded), which is not a failure.
// Any other error is.
//
// A subscribe that fails (no such queue, access refused) is retried with
// backoff; SubscribeErr and HookSubscribeFailed say why.
//
// Handlers get a ctx derived from ctx, cancelled too when their delivery's
// channel is gone and when the ctx of a Close ends (see Handler). Run fails at
// once with ErrNilHandler, ErrRunning (another Run is active) or ErrClosed
// (after Close).
func (k *Consumer) Run(ctx context.Context, h Handler) error {
	if h == nil {
		return ErrNilHandler
	}
	if ctx == nil {
		return fmt.Errorf("%w: nil context", ErrInvalidConfig)
	}
	k.mu.Lock()
	if k.closeCtx.Err() != nil {
		k.mu.Unlock()
		if k.byClient.Load() {
			return fmt.Errorf("%w: %w", ErrClosed, lavinmq.ErrClosed)
		}
		return ErrClosed
	}
	if k.runDone != nil {
		k.mu.Unlock()
		return ErrRunning
	}
	done := make(chan struct{})
	k.runDone = done
	k.mu.Unlock()
	defer func() {
		k.mu.Lock()
		k.runDone = nil
		k.mu.Unlock()
		close(done)
	}()

	stopCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopOnClose := context.AfterFunc(k.closeCtx, cancel)
	defer stopOnClose()

	// The handlers' ctx: Run's, cancelled also when a Close's ctx ends.
	hctx, hcancel := context.WithCancel(ctx)
	defer hcancel()
	stopOnAbandon := context.AfterFunc(k.abandon, hcancel)
	defer stopOnAbandon()

	// jobs holds as many deliveries as there are workers, no more: the rest
	// of the prefetch waits in amqp091-go's own (growing, not preallocated)
	// buffer, so an idle consumer with a large prefetch costs little memory
	// and a stop finds the unstarted deliveries in one place to hand back.
	// Jobs still buffered when Run stops are handed back (nack with requeue),
	// and jobs of a lost channel are dropped as stale without running the
	// handler.
	jobs := make(chan job, k.cfg.workers())
	cancelled := make(chan struct{}) // closed once the subscription is cancelled (or given up)
	var workers sync.WaitGroup
	for range k.cfg.workers() {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for j := range jobs {
				if stopCtx.Err() != nil {
					// Hand back only once the subscription is cancelled,
					// else the broker could send it straight back to us.
					<-cancelled
					k.handBack(j)
					continue
				}
				k.handle(hctx, h, j)
			}
		}()
	}

	s, err := k.loop(stopCtx, jobs)
	// Graceful end: cancel the subscription; hand back at once what was
	// prefetched and not started (held by the pump, waiting in jobs for a
	// busy worker, or still in amqp091-go's buffer); let the handlers in
	// flight finish and apply their Actions on the still-open channel; then
	// close it.
	if s != nil && s.live() {
		k.brokerCall(s, func() {
			if cerr := s.ch.Cancel(s.tag, false); cerr != nil {
				k.log.Debug("consumer: cancel subscription", "error", cerr)
			}
		})
	}
	close(cancelled)
	if s != nil && s.held != nil {
		k.handBack(*s.held)
	}
	for drained := false; !drained; { // nothing sends on jobs any more
		select {
		case j := <-jobs:
			k.handBack(j)
		default:
			drained = true
		}
	}
	if s != nil && s.live() {
		// After cancel-ok amqp091 delivers what it still buffers, then
		// closes the channel of deliveries (so does a channel close).
		k.brokerCall(s, func() {
			for d := range s.deliveries {
				k.handBack(job{s: s, d: d})
			}
		})
	}
	close(jobs)
	workers.Wait()
	if s != nil {
		k.endSession(s)
	}
	k.log.Info("consumer: stopped")
	switch {
	case err != nil:
		return err
	case k.byClient.Load():
		return fmt.Errorf("consumer: queue %q: %w", k.queue, lavinmq.ErrClosed)
	case k.closeCtx.Err() != nil:
		return nil
	default:
		return ctx.Err()
	}
}

// Close stops consuming: Run cancels the subscription, lets the handlers in
// flight finish, closes its channel (not the Client's connection) and
// returns. Close waits for that until ctx ends (then it returns ctx.Err()).
// It is idempotent; Run after Close returns ErrClosed.
//
// A broker that blocks the connection (connection.blocked: a memory or disk
// alarm) reads nothing from it until the alarm clears, so it answers neither
// basic.cancel nor channel.close. When ctx ends, Run stops waiting for those
// answers and returns at once; the call still waiting is left on its own
// goroutine, which ends when the broker answers or the connection closes
// (Client.Close closes it within its close timeout).
//
// When ctx ends, the handlers' ctx is cancelled too: handlers that honour it
// return and Run returns right after them.
func (k *Consumer) Close(ctx context.Context) error {
	k.closeCancel()
	k.unregister()
	k.mu.Lock()
	done := k.runDone
	k.mu.Unlock()
	if done == nil {
		return nil
	}
	if ctx == nil {
		ctx = context.Background()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		k.abandonCancel()
		return ctx.Err()
	}
}

// brokerCall runs f, a call on s's channel that waits for the broker's
// answer, and waits for it until it returns, the connection is lost, or a
// Close's ctx ended (see Close). In the last two cases f is left to end on
// its own goroutine when the broker answers or the connection closes.
func (k *Consumer) brokerCall(s *session, f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-s.cn.Done():
	case <-k.abandon.Done():
	}
}

// loop subscribes, pumps deliveries to the workers until the subscription is
// lost, and subscribes again, until ctx ends. It returns the session that was
// live when ctx ended (still open, for a graceful end), or an error when the
// Client was closed. It tells the Client when it first consumes the queue and
// when it stops (on purpose unless the Client was closed), so that the Client
// forgets an auto-delete queue the broker deletes when its last consumer goes.
func (k *Consumer) loop(ctx context.Context, jobs chan<- job) (_ *session, err error) {
	b := k.cfg.newBackoff()
	subscribed := false
	defer func() {
		if subscribed {
			k.client.ConsumeEnded(k.queue, err == nil)
		}
	}()
	declare := k.cfg.declare
	var lostAt time.Time
	for attempt := 1; ; attempt++ {
		s, cn, err := k.subscribe(ctx, declare)
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil
			}
			if errors.Is(err, lavinmq.ErrClosed) {
				k.log.Error("consumer: client closed, stopping", "error", err)
				return nil, fmt.Errorf("consumer: queue %q: %w", k.queue, err)
			}
			if errors.Is(err, ErrDeclare) {
				k.log.Error("consumer: declaration refused, stopping", "error", err)
				k.subscribeFailed(err, attempt)
				return nil, err
			}
			k.subscribeFailed(err, attempt)
			delay := b.NextBackOff()
			if notFound(err) {
				declare = k.cfg.declare
				k.log.Warn("consumer: queue not found, retrying", "attempt", attempt, "delay", delay, "declare", declare)
			} else {
				k.log.Warn("consumer: subscribe failed, retrying", "attempt", attempt, "delay", delay, "error", err)
			}
			if !k.wait(ctx, cn, delay) {
				return nil, nil
			}
			continue
		}
		declare, attempt = false, 0
		b.Reset()
		k.setSubErr(nil)
		if subscribed {
			k.stats.resubscribes.Add(1)
			k.log.Info("consumer: resubscribed", "tag", s.tag, "generation", s.cn.Generation(), "downtime", time.Since(lostAt))
			k.eachHook(func(h any) {
				if h, ok := h.(HookResubscribed); ok {
					h.OnResubscribed(k.queue)
				}
			})
		} else {
			k.client.ConsumeStarted(k.queue)
			k.log.Info("consumer: subscribed", "tag", s.tag, "generation", s.cn.Generation())
		}
		subscribed = true

		reason, cancelled := k.pump(ctx, s, jobs)
		if reason == "" {
			return s, nil
		}
		lostAt = time.Now()
		k.endSession(s)
		if cancelled {
			declare = k.cfg.declare // the queue may have been deleted
		}
		k.log.Warn("consumer: subscription lost", "tag", s.tag, "reason", reason)
	}
}

// wait sleeps for delay, or until the connection cn (if known) is lost (its
// successor can be tried at once), or ctx ends (false).
func (k *Consumer) wait(ctx context.Context, cn *lavinmq.Conn, delay time.Duration) bool {
	t := time.NewTimer(delay)
	defer t.Stop()
	var lost <-chan struct{}
	if cn != nil {
		lost = cn.Done()
	}
	select {
	case <-t.C:
	case <-lost:
	case <-ctx.Done():
		return false
	}
	return true
}

// subscribe opens a channel on the current connection, sets QoS and starts
// consuming. It returns the connection it used (when it got one) so that a
// failure can wait for its loss.
func (k *Consumer) subscribe(ctx context.Context, declare bool) (*session, *lavinmq.Conn, error) {
	cn, err := k.client.Connection(ctx)
	if err != nil {
		return nil, nil, err
	}
	if declare {
		if err := k.declare(ctx); err != nil {
			return nil, cn, err
		}
	}
	ch, err := cn.Channel()
	if err != nil {
		return nil, cn, err
	}
	sctx, scancel := context.WithCancel(context.Background())
	s := &session{
		ctx:     sctx,
		cancel:  scancel,
		cn:      cn,
		ch:      ch,
		tag:     k.tagBase + "-" + strconv.FormatUint(k.tagSeq.Add(1), 10),
		closes:  ch.NotifyClose(make(chan *amqp.Error, 1)),
		cancels: ch.NotifyCancel(make(chan string, 1)),
	}
	if b := k.cfg.ackBatch(); b > 1 {
		s.acks = k.newAcker(s, b)
	}
	if err := ch.Qos(k.cfg.prefetch, 0, false); err != nil {
		k.endSession(s)
		return nil, cn, fmt.Errorf("qos: %w", err)
	}
	// A server-named queue may have a new name after a reconnect.
	var from any
	if k.stream != nil {
		from = k.stream.start(s)
	}
	s.deliveries, err = ch.Consume(k.client.QueueName(k.queue), s.tag, false, k.cfg.exclusive, false, false, k.cfg.consumeTable(from))
	if err != nil {
		k.endSession(s)
		return nil, cn, fmt.Errorf("consume: %w", err)
	}
	return s, cn, nil
}

// endSession writes the acks s still holds while its channel is open (or
// counts them stale), marks s dead, so that no more Actions go to its channel,
// and closes the channel (the broker requeues its unacknowledged deliveries).
func (k *Consumer) endSession(s *session) {
	if s.acks != nil {
		k.brokerCall(s, s.acks.close)
	}
	s.dead.Store(true)
	s.cancel()
	k.brokerCall(s, func() { _ = s.ch.Close() }) // ErrClosed when the channel or connection is already gone
}

// pump hands the deliveries of s to the workers until ctx ends (reason "")
// or the subscription is lost (the reason; cancelled when the broker sent
// basic.cancel). A delivery taken but not handed over when that happens stays
// unacknowledged and the broker delivers it again.
func (k *Consumer) pump(ctx context.Context, s *session, jobs chan<- job) (reason string, cancelled bool) {
	lost := s.cn.Done()
	// One delivery at a time is held between receiving and handing over:
	// while held, in is nil and out is jobs; otherwise the reverse.
	var held job
	in, out := s.deliveries, (chan<- job)(nil)
	for {
		select {
		case d, ok := <-in:
			if !ok {
				// amqp091 notifies a basic.cancel before it closes the deliveries.
				select {
				case <-s.cancels:
					return "cancelled by the broker", true
				default:
					return "delivery channel closed", false
				}
			}
			k.streamTake(s, &d)
			if s.acks != nil {
				s.acks.track(d.DeliveryTag)
			}
			held, in, out = job{s: s, d: d}, nil, jobs
		case out <- held:
			held, in, out = job{}, s.deliveries, nil
		case <-ctx.Done():
			if out != nil {
				s.held = &held // Run hands it back once the subscription is cancelled
			}
			return "", false
		case <-lost:
			return "connection lost", false
		case e := <-s.closes:
			return closeReason(e), false
		case <-s.cancels:
			return "cancelled by the broker", true
		}
	}
}

func closeReason(e *amqp.Error) string {
	if e == nil {
		return "channel closed"
	}
	return "channel closed: " + e.Error()
}

// notFound reports whether err is the broker's 404 (no such queue).
func notFound(err error) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && ae.Code == amqp.NotFound
}
