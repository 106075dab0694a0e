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
// a goroutine tracked by wg so that ctx can end the wait. Close ends them all.
type Client struct {
	cfg  cfg
	log  *slog.Logger
	topo topology

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	done   chan struct{} // closed when the supervisor has returned
	wg     sync.WaitGroup

	mu             sync.Mutex
	closed         bool
	cur            *Conn         // the connection in service, nil while disconnected
	ready          chan struct{} // closed when cur is set; replaced when it is lost
	blocked        bool
	blockedReason  string
	blockedChanged chan struct{} // closed and replaced at every change of blocked
}

// Conn is one established AMQP connection of a Client. A lost Conn is never
// reused: Done is closed and the Client publishes a new Conn once the
// recorded topology has been replayed on it.
type Conn struct {
	conn       *amqp.Connection
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
// (connected and topology replayed), ctx ends (its error) or the client is
// closed (ErrClosed).
func (c *Client) Connection(ctx context.Context) (*Conn, error) {
	for {
		c.mu.Lock()
		closed, cur, ready := c.closed, c.cur, c.ready
		c.mu.Unlock()
		if closed {
			return nil, ErrClosed
		}
		if cur != nil {
			return cur, nil
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.ctx.Done():
			return nil, ErrClosed
		}
	}
}

// WaitConnected blocks until the client is connected, ctx ends or the client is closed.
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

// Close closes the connection and ends every goroutine the client started. It
// is idempotent and safe during a reconnect loop; later calls on the client
// return ErrClosed.
//
// It is bounded even when the broker does not answer: a broker that blocks
// the connection (connection.blocked) reads nothing from it, so the close
// handshake gets DefaultCloseTimeout (2s), after which the socket is closed.
// That also ends every call of a producer or consumer still waiting on this
// connection (a stalled write, a channel close), so their goroutines end too.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	<-c.done
	c.wg.Wait()
	return nil
}

// run is the supervisor: connect, replay topology, serve until the connection
// is lost, repeat until Close.
func (c *Client) run() {
	defer close(c.done)
	b := c.cfg.newBackoff()
	next := 0
	var gen uint64
	var lostAt time.Time
	for {
		if gen > 0 && !c.pauseBeforeReconnect() {
			return
		}
		conn, idx, attempts, ok := c.connect(b, next)
		if !ok {
			return
		}
		next = idx // after a loss, try the same broker first
		gen++
		cn := &Conn{conn: conn, generation: gen, endpoint: endpoint(c.cfg.urls[idx]), lost: make(chan struct{})}
		notify := conn.NotifyClose(make(chan *amqp.Error, 1)) // buffered: amqp091 sends once, then closes
		blocks := conn.NotifyBlocked(make(chan amqp.Blocking, 8))
		c.wg.Add(1)
		go c.watchBlocked(cn, blocks)
		if c.cfg.ignoreCloseNotify {
			notify = nil
		}
		ev := ConnectedEvent{Endpoint: cn.endpoint, Attempts: attempts, Reconnect: gen > 1}
		if gen > 1 {
			ev.Downtime = time.Since(lostAt)
		}
		c.setCurrent(cn)
		c.log.Info("lavinmq: connected", "endpoint", cn.endpoint, "generation", gen, "attempts", attempts, "downtime", ev.Downtime)
		c.eachHook(func(h any) {
			if h, ok := h.(HookConnected); ok {
				h.OnConnected(ev)
			}
		})

		by, err := c.watch(conn, notify)
		lostAt = time.Now()
		c.clearCurrent(cn)
		_ = conn.CloseDeadline(time.Now().Add(c.cfg.closeTimeout)) // no-op error when already closed
		if by == "" {                                              // Close
			return
		}
		c.log.Warn("lavinmq: connection lost", "endpoint", cn.endpoint, "detected_by", string(by), "error", c.safeErr(err))
		c.eachHook(func(h any) {
			if h, ok := h.(HookDisconnected); ok {
				h.OnDisconnected(DisconnectedEvent{Endpoint: cn.endpoint, Err: err, DetectedBy: by})
			}
		})
	}
}

// pauseBeforeReconnect waits a random delay in [0, 2·jitter·initial delay)
// (0 to 100 ms with the defaults) before the first dial after a loss, so
// that many clients that lose their connections at once (a broker closing
// them all, a node leaving a cluster) do not all dial in the same instant.
// It reports false when the client was closed meanwhile.
func (c *Client) pauseBeforeReconnect() bool {
	d := time.Duration(rand.Float64() * 2 * c.cfg.jitter * float64(c.cfg.initialDelay))
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
// for the backoff delay. It returns ok=false when the client is closed.
func (c *Client) connect(b interface{ NextBackOff() time.Duration }, next int) (*amqp.Connection, int, int, bool) {
	n := len(c.cfg.urls)
	failedInRound := 0
	for attempt := 1; ; attempt++ {
		if c.ctx.Err() != nil {
			return nil, 0, 0, false
		}
		url := c.cfg.urls[next]
		conn, err := c.dial(url)
		if err == nil {
			err = c.topo.replay(c.ctx, conn, c)
			if err == nil {
				if r, ok := b.(interface{ Reset() }); ok {
					r.Reset()
				}
				return conn, next, attempt, true
			}
			_ = conn.CloseDeadline(time.Now().Add(c.cfg.closeTimeout))
		}
		if c.ctx.Err() != nil {
			return nil, 0, 0, false
		}
		ep := endpoint(url)
		next = (next + 1) % n
		failedInRound++
		var delay time.Duration
		if failedInRound == n {
			failedInRound = 0
			delay = b.NextBackOff()
		}
		c.log.Warn("lavinmq: connect failed", "endpoint", ep, "attempt", attempt, "delay", delay, "error", c.safeErr(err))
		c.eachHook(func(h any) {
			if h, ok := h.(HookReconnectAttempt); ok {
				h.OnReconnectAttempt(ReconnectAttemptEvent{Endpoint: ep, Attempt: attempt, Err: err, Delay: delay})
			}
		})
		if delay > 0 {
			select {
			case <-c.cfg.after(delay):
			case <-c.ctx.Done():
				return nil, 0, 0, false
			}
		}
	}
}

func (c *Client) setCurrent(cn *Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cur = cn
	close(c.ready)
}

// clearCurrent takes cn out of service: callers waiting in Connection wait
// for the next one, and a blocked state ends with the connection it was on.
func (c *Client) clearCurrent(cn *Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
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
				h.OnBlocked(b.Active, b.Reason)
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
