package lavinmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Client owns one AMQP connection and replaces it, by itself, whenever it is
// lost. It is safe for concurrent use.
//
// Goroutines: one supervisor (run) dials, watches and replaces the connection
// and owns every connection it opens; one watcher per connection drains the
// broker's connection.blocked notifications; topology calls run their RPC on
// a goroutine tracked by wg so that ctx can end the wait, and replay steps the
// broker refused with 405 are retried on a tracked goroutine until they pass,
// their entity is forgotten or the connection goes. Close ends them all.
type Client struct {
	cfg  cfg
	log  *slog.Logger
	topo topology

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	done   chan struct{} // closed when the supervisor has returned
	wg     sync.WaitGroup

	closers closers // run by Close before the connection goes

	mu             sync.Mutex
	closed         bool
	cur            *Conn         // the connection in service, nil while disconnected
	ready          chan struct{} // closed when cur is set; replaced when it is lost
	blocked        bool
	blockedReason  string
	blockedChanged chan struct{} // closed and replaced at every change of blocked
	lastErr        error         // the last failed attempt's error or the last loss, for WaitConnected; written by run
	failures       int           // failed attempts since the last connection; written by run
	gaveUp         error         // set by run when WithFailFast stopped the client (a *gaveUpError)
}

// Conn is one established AMQP connection of a Client. A lost Conn is never
// reused: Done is closed and the Client publishes a new Conn once the
// recorded topology has been replayed on it.
type Conn struct {
	conn       *amqp.Connection
	cork       *corkConn // nil with WithWriteCoalescing(false)
	generation uint64
	endpoint   string
	lost       chan struct{}
}

// Channel opens a new channel on this connection. It fails with an error
// wrapping ErrConnectionLost when the connection is gone; wait on Done and ask
// the Client for the next one.
func (cn *Conn) Channel() (*amqp.Channel, error) {
	ch, err := cn.conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("%w: open channel on %s: %w", ErrConnectionLost, cn.endpoint, err)
	}
	return ch, nil
}

// Done is closed when this connection is lost or the Client is closed.
func (cn *Conn) Done() <-chan struct{} { return cn.lost }

// Generation counts the connections of a Client: 1 for the first, 2 after the first reconnect...
func (cn *Conn) Generation() uint64 { return cn.generation }

// Endpoint is the host:port this connection goes to.
func (cn *Conn) Endpoint() string { return cn.endpoint }

// New validates url and the options and returns at once; the connection is
// made in the background. Use WaitConnected to wait for it.
func New(url string, opts ...Option) (*Client, error) {
	cf := defaultConfig()
	cf.urls = []string{url}
	for _, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("%w: nil option", ErrInvalidConfig)
		}
		o.apply(&cf)
	}
	if err := cf.validate(); err != nil {
		return nil, err
	}
	if err := cf.resolveName(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		cfg:            cf,
		log:            cf.logger,
		ctx:            ctx,
		cancel:         cancel,
		done:           make(chan struct{}),
		ready:          make(chan struct{}),
		blockedChanged: make(chan struct{}),
	}
	go c.run()
	return c, nil
}

// Connection returns the connection in service, waiting until there is one
// (connected and topology replayed), ctx ends, the client is closed
// (ErrClosed) or it gave up (WithFailFast: an error wrapping ErrPermanent).
// When ctx ends first, the error wraps ctx's error and the last attempt's.
func (c *Client) Connection(ctx context.Context) (*Conn, error) {
	for {
		c.mu.Lock()
		closed, gaveUp, cur, ready := c.closed, c.gaveUp, c.cur, c.ready
		c.mu.Unlock()
		if closed {
			return nil, ErrClosed
		}
		if gaveUp != nil {
			return nil, gaveUp
		}
		if cur != nil {
			return cur, nil
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, c.notConnected(ctx.Err())
		case <-c.ctx.Done():
			return nil, ErrClosed
		case <-c.done: // the supervisor gave up (or Close): see the fields again
		}
	}
}

// notConnected wraps ctxErr with why the client is not connected: the last
// failed attempt's error (or the last loss), so that a wrong password, an
// unknown vhost or an untrusted certificate does not look like a hang. Both
// errors stay reachable through errors.Is and errors.As; no password is in the text.
func (c *Client) notConnected(ctxErr error) error {
	c.mu.Lock()
	last, n := c.lastErr, c.failures
	c.mu.Unlock()
	switch {
	case last == nil:
		return fmt.Errorf("lavinmq: not connected (no attempt has finished yet): %w", ctxErr)
	case n == 0:
		return fmt.Errorf("lavinmq: not connected: %w; last error: %w", ctxErr, last)
	default:
		return fmt.Errorf("lavinmq: not connected after %d failed attempts: %w; last error: %w", n, ctxErr, last)
	}
}

// WaitConnected blocks until the client is connected, ctx ends, the client is
// closed or it gave up (WithFailFast). When ctx ends first, the error wraps
// ctx's error (errors.Is(err, context.DeadlineExceeded) holds) and the last
// attempt's error, e.g. the broker's 403 for a wrong password, 530 for an
// unknown vhost, or the x509 error of an untrusted certificate.
func (c *Client) WaitConnected(ctx context.Context) error {
	_, err := c.Connection(ctx)
	return err
}

// Connected reports whether a connection is in service now.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur != nil && !c.cur.conn.IsClosed()
}

// Blocked reports whether the broker has blocked the connection
// (connection.blocked, e.g. a memory or disk alarm) and returns a channel that
// is closed at the next change, so a publisher can pause without polling.
func (c *Client) Blocked() (blocked bool, changed <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.blocked, c.blockedChanged
}

// run is the supervisor: connect, replay topology, serve until the connection
// is lost, repeat until Close.
func (c *Client) run() {
	defer close(c.done)
	b := c.cfg.newBackoff()
	next := 0
	var gen uint64
	var lostAt, upAt time.Time
	for {
		if gen > 0 && !c.pauseBeforeReconnect(b, lostAt.Sub(upAt)) {
			return
		}
		conn, cork, idx, attempts, ok := c.connect(b, next, gen == 0)
		if !ok {
			return
		}
		next = idx // after a loss, try the same broker first
		gen++
		cn := &Conn{conn: conn, cork: cork, generation: gen, endpoint: endpoint(c.cfg.urls[idx]), lost: make(chan struct{})}
		notify := conn.NotifyClose(make(chan *amqp.Error, 1)) // buffered: amqp091 sends once, then closes
		blocks := conn.NotifyBlocked(make(chan amqp.Blocking, 8))
		c.wg.Add(1)
		go c.watchBlocked(cn, blocks)
		if c.cfg.ignoreCloseNotify {
			notify = nil
		}
		ev := ConnectedEvent{Client: c.cfg.name, Endpoint: cn.endpoint, Attempts: attempts, Reconnect: gen > 1}
		if gen > 1 {
			ev.Downtime = time.Since(lostAt)
		}
		c.setCurrent(cn)
		upAt = time.Now()
		c.log.Info("lavinmq: connected", "endpoint", cn.endpoint, "generation", gen, "attempts", attempts, "downtime", ev.Downtime)
		c.eachHook(func(h any) {
			if h, ok := h.(HookConnected); ok {
				h.OnConnected(ev)
			}
		})

		by, err := c.watch(conn, notify)
		lostAt = time.Now()
		c.clearCurrent(cn, by, err)
		_ = conn.CloseDeadline(time.Now().Add(c.cfg.closeTimeout)) // no-op error when already closed
		if by == "" {                                              // Close
			return
		}
		c.log.Warn("lavinmq: connection lost", "endpoint", cn.endpoint, "detected_by", string(by), "error", c.safeErr(err))
		c.eachHook(func(h any) {
			if h, ok := h.(HookDisconnected); ok {
				h.OnDisconnected(DisconnectedEvent{Client: c.cfg.name, Endpoint: cn.endpoint, Err: err, DetectedBy: by})
			}
		})
	}
}

// pauseBeforeReconnect waits before the first dial after a loss. After a
// stable connection (up for at least stableAfter) the backoff starts over and
// the pause is a random delay in [0, 2·jitter·initial delay) (0 to 100 ms with
// the defaults), so that many clients that lose their connections at once (a
// broker closing them all, a node leaving a cluster) do not all dial in the
// same instant. After a shorter-lived connection the pause is the backoff's
// next delay, so a peer that accepts and then drops connections sees the
// client slow down exponentially instead of redialling at once. It reports
// false when the client was closed meanwhile.
func (c *Client) pauseBeforeReconnect(b *reconnectBackoff, uptime time.Duration) bool {
	var d time.Duration
	if stable := uptime >= c.cfg.stableAfter(); stable {
		b.Reset()
		d = time.Duration(rand.Float64() * 2 * c.cfg.jitter * float64(c.cfg.initialDelay))
	} else {
		d = b.NextBackOff()
		c.log.Warn("lavinmq: connection lost soon after it was made; backing off", "uptime", uptime, "delay", d)
	}
	if d <= 0 {
		return c.ctx.Err() == nil
	}
	select {
	case <-c.cfg.after(d):
		return true
	case <-c.ctx.Done():
		return false
	}
}

// watch blocks until conn is lost (and says how that was noticed) or the
// client is closed (by == "").
func (c *Client) watch(conn *amqp.Connection, notify <-chan *amqp.Error) (by Detector, err error) {
	poll := time.NewTicker(c.cfg.healthInterval)
	defer poll.Stop()
	for {
		select {
		case e, ok := <-notify:
			if ok && e != nil {
				return DetectedByNotify, e
			}
			return DetectedByNotify, amqp.ErrClosed
		case <-poll.C:
			if conn.IsClosed() {
				return DetectedByPoll, amqp.ErrClosed
			}
		case <-c.ctx.Done():
			return "", nil
		}
	}
}

// connect dials the URLs in turn, starting at index next, until one answers
// and the topology is replayed on it. Between full rounds of failures it waits
// for the backoff delay; it never resets the backoff (run does, after a stable
// connection). It returns ok=false when the client is closed, or when first
// and WithFailFast are set and an attempt failed with a permanent error.
func (c *Client) connect(b *reconnectBackoff, next int, first bool) (*amqp.Connection, *corkConn, int, int, bool) {
	n := len(c.cfg.urls)
	failedInRound := 0
	for attempt := 1; ; attempt++ {
		if c.ctx.Err() != nil {
			return nil, nil, 0, 0, false
		}
		url := c.cfg.urls[next]
		conn, cork, err := c.dial(url)
		if err == nil {
			err = c.topo.replay(c.ctx, conn, c)
			if err == nil {
				return conn, cork, next, attempt, true
			}
			_ = conn.CloseDeadline(time.Now().Add(c.cfg.closeTimeout))
		}
		if c.ctx.Err() != nil {
			return nil, nil, 0, 0, false
		}
		ep := endpoint(url)
		giveUp := first && c.cfg.failFast && permanent(err)
		c.recordFailure(err, giveUp)
		next = (next + 1) % n
		failedInRound++
		var delay time.Duration
		if failedInRound == n && !giveUp {
			failedInRound = 0
			delay = b.NextBackOff()
		}
		c.log.Warn("lavinmq: connect failed", "endpoint", ep, "attempt", attempt, "delay", delay, "error", c.safeErr(err))
		c.eachHook(func(h any) {
			if h, ok := h.(HookReconnectAttempt); ok {
				h.OnReconnectAttempt(ReconnectAttemptEvent{Client: c.cfg.name, Endpoint: ep, Attempt: attempt, Err: err, Delay: delay})
			}
		})
		if giveUp {
			c.log.Error("lavinmq: giving up: permanent error on the first connection (WithFailFast)", "endpoint", ep, "error", c.safeErr(err))
			return nil, nil, 0, 0, false
		}
		if delay > 0 {
			select {
			case <-c.cfg.after(delay):
			case <-c.ctx.Done():
				return nil, nil, 0, 0, false
			}
		}
	}
}

// recordFailure keeps a failed attempt's error for WaitConnected and, when
// giveUp, stops the client for good (WithFailFast).
func (c *Client) recordFailure(err error, giveUp bool) {
	safe := c.safe(err)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastErr = safe
	c.failures++
	if giveUp {
		c.gaveUp = &gaveUpError{cause: safe}
	}
}

func (c *Client) setCurrent(cn *Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cur = cn
	c.failures = 0
	close(c.ready)
}

// clearCurrent takes cn out of service: callers waiting in Connection wait
// for the next one, and a blocked state ends with the connection it was on.
// A loss (by != "") is kept as the last error for WaitConnected.
func (c *Client) clearCurrent(cn *Conn, by Detector, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if by != "" {
		c.lastErr = fmt.Errorf("lavinmq: connection to %s lost (detected by %s): %w", cn.endpoint, by, c.safe(err))
	}
	c.cur = nil
	c.ready = make(chan struct{})
	close(cn.lost)
	if c.blocked {
		c.blocked, c.blockedReason = false, ""
		close(c.blockedChanged)
		c.blockedChanged = make(chan struct{})
	}
}

// watchBlocked drains the connection.blocked notifications of one connection
// until amqp091-go closes the channel at shutdown.
func (c *Client) watchBlocked(cn *Conn, ch <-chan amqp.Blocking) {
	defer c.wg.Done()
	for b := range ch {
		c.mu.Lock()
		changed := c.cur == cn && c.blocked != b.Active
		if changed {
			c.blocked, c.blockedReason = b.Active, b.Reason
			close(c.blockedChanged)
			c.blockedChanged = make(chan struct{})
		}
		c.mu.Unlock()
		if !changed {
			continue
		}
		c.log.Warn("lavinmq: connection blocked by broker", "endpoint", cn.endpoint, "blocked", b.Active, "reason", b.Reason)
		c.eachHook(func(h any) {
			if h, ok := h.(HookBlocked); ok {
				h.OnBlocked(BlockedEvent{Client: c.cfg.name, Blocked: b.Active, Reason: b.Reason})
			}
		})
	}
}

// safeErr renders err for a log line with any URL password removed.
func (c *Client) safeErr(err error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	for _, u := range c.cfg.urls {
		msg = scrub(msg, u)
	}
	return msg
}

// goTracked runs f on a goroutine that Close waits for. It fails with
// ErrClosed once Close has begun.
func (c *Client) goTracked(f func()) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
	return nil
}

// errClosedOr maps an error seen after Close to ErrClosed.
func (c *Client) errClosedOr(err error) error {
	if c.ctx.Err() != nil && !errors.Is(err, ErrClosed) {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return err
}
