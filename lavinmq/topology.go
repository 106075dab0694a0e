package lavinmq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Queue is a queue declaration. Declared through the Client, it is recorded
// and declared again after every reconnect.
type Queue struct {
	Name       string // "" asks the broker for a name; such a queue is not recorded
	Durable    bool
	AutoDelete bool
	Exclusive  bool
	Args       amqp.Table
}

// Exchange is an exchange declaration, recorded like a Queue.
type Exchange struct {
	Name       string
	Kind       string // direct, fanout, topic, headers, or a plugin's type
	Durable    bool
	AutoDelete bool
	Internal   bool
	Args       amqp.Table
}

// Binding binds a queue to an exchange, recorded like a Queue.
type Binding struct {
	Queue    string
	Exchange string
	Key      string
	Args     amqp.Table
}

func (q Queue) declare(ch *amqp.Channel) (amqp.Queue, error) {
	return ch.QueueDeclare(q.Name, q.Durable, q.AutoDelete, q.Exclusive, false, q.Args)
}

func (e Exchange) declare(ch *amqp.Channel) error {
	return ch.ExchangeDeclare(e.Name, e.Kind, e.Durable, e.AutoDelete, e.Internal, false, e.Args)
}

func (b Binding) declare(ch *amqp.Channel) error {
	return ch.QueueBind(b.Queue, b.Key, b.Exchange, false, b.Args)
}

func (b Binding) same(o Binding) bool {
	return b.Queue == o.Queue && b.Exchange == o.Exchange && b.Key == o.Key
}

// topology is the record of declarations, replayed in order: exchanges, queues, bindings.
type topology struct {
	mu        sync.Mutex
	exchanges []Exchange
	queues    []Queue
	bindings  []Binding
}

func upsert[T any](list []T, v T, same func(T) bool) []T {
	if i := slices.IndexFunc(list, same); i >= 0 {
		list[i] = v
		return list
	}
	return append(list, v)
}

// DeclareQueue declares q on the broker and records it for replay after every reconnect.
func (c *Client) DeclareQueue(ctx context.Context, q Queue) (amqp.Queue, error) {
	var res amqp.Queue
	if q.Name != "" {
		c.topo.mu.Lock()
		c.topo.queues = upsert(c.topo.queues, q, func(o Queue) bool { return o.Name == q.Name })
		c.topo.mu.Unlock()
	}
	err := c.onChannel(ctx, func(ch *amqp.Channel) (err error) {
		res, err = q.declare(ch)
		return err
	})
	if err != nil && q.Name != "" && refused(err) {
		c.forgetQueue(q.Name)
	}
	return res, wrapTopo("declare queue", q.Name, err)
}

// DeclareExchange declares e on the broker and records it for replay.
func (c *Client) DeclareExchange(ctx context.Context, e Exchange) error {
	if e.Name == "" || e.Kind == "" {
		return fmt.Errorf("%w: exchange needs a name and a kind", ErrInvalidTopology)
	}
	c.topo.mu.Lock()
	c.topo.exchanges = upsert(c.topo.exchanges, e, func(o Exchange) bool { return o.Name == e.Name })
	c.topo.mu.Unlock()
	err := c.onChannel(ctx, e.declare)
	if err != nil && refused(err) {
		c.forgetExchange(e.Name)
	}
	return wrapTopo("declare exchange", e.Name, err)
}

// BindQueue binds a queue to an exchange and records the binding for replay.
func (c *Client) BindQueue(ctx context.Context, b Binding) error {
	if b.Queue == "" || b.Exchange == "" {
		return fmt.Errorf("%w: binding needs a queue and an exchange", ErrInvalidTopology)
	}
	c.topo.mu.Lock()
	c.topo.bindings = upsert(c.topo.bindings, b, b.same)
	c.topo.mu.Unlock()
	err := c.onChannel(ctx, b.declare)
	if err != nil && refused(err) {
		c.forgetBindings(func(o Binding) bool { return o.same(b) })
	}
	return wrapTopo("bind queue", b.Queue, err)
}

// UnbindQueue removes a binding from the broker and from the record.
func (c *Client) UnbindQueue(ctx context.Context, b Binding) error {
	c.forgetBindings(func(o Binding) bool { return o.same(b) })
	return wrapTopo("unbind queue", b.Queue, c.onChannel(ctx, func(ch *amqp.Channel) error {
		return ch.QueueUnbind(b.Queue, b.Key, b.Exchange, b.Args)
	}))
}

// DeleteQueue deletes a queue and forgets it and its bindings. It returns the
// number of messages the queue held.
func (c *Client) DeleteQueue(ctx context.Context, name string) (int, error) {
	c.forgetQueue(name)
	var n int
	err := c.onChannel(ctx, func(ch *amqp.Channel) (err error) {
		n, err = ch.QueueDelete(name, false, false, false)
		return err
	})
	return n, wrapTopo("delete queue", name, err)
}

// DeleteExchange deletes an exchange and forgets it and its bindings.
func (c *Client) DeleteExchange(ctx context.Context, name string) error {
	c.forgetExchange(name)
	return wrapTopo("delete exchange", name, c.onChannel(ctx, func(ch *amqp.Channel) error {
		return ch.ExchangeDelete(name, false, false)
	}))
}

func (c *Client) forgetQueue(name string) {
	c.topo.mu.Lock()
	c.topo.queues = slices.DeleteFunc(c.topo.queues, func(q Queue) bool { return q.Name == name })
	c.topo.mu.Unlock()
	c.forgetBindings(func(b Binding) bool { return b.Queue == name })
}

func (c *Client) forgetExchange(name string) {
	c.topo.mu.Lock()
	c.topo.exchanges = slices.DeleteFunc(c.topo.exchanges, func(e Exchange) bool { return e.Name == name })
	c.topo.mu.Unlock()
	c.forgetBindings(func(b Binding) bool { return b.Exchange == name })
}

func (c *Client) forgetBindings(match func(Binding) bool) {
	c.topo.mu.Lock()
	c.topo.bindings = slices.DeleteFunc(c.topo.bindings, match)
	c.topo.mu.Unlock()
}

// refused reports whether the broker rejected the request itself (as opposed
// to the connection failing under it): such a declaration is not recorded.
func refused(err error) bool {
	var ae *amqp.Error
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.Code {
	case amqp.AccessRefused, amqp.NotFound, amqp.ResourceLocked, amqp.PreconditionFailed, amqp.NotAllowed:
		return true
	}
	return false
}

func wrapTopo(op, name string, err error) error {
	if err == nil || errors.Is(err, ErrClosed) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("lavinmq: %s %q: %w", op, name, err)
}

// onChannel runs f on a fresh channel of the current connection, waiting for
// a connection if needed. The RPC runs on a tracked goroutine so that ctx ends
// the wait even when the broker does not answer.
func (c *Client) onChannel(ctx context.Context, f func(*amqp.Channel) error) error {
	cn, err := c.Connection(ctx)
	if err != nil {
		return err
	}
	res := make(chan error, 1)
	if err := c.goTracked(func() {
		ch, err := cn.Channel()
		if err == nil {
			if err = f(ch); err == nil {
				_ = ch.Close()
			}
		}
		res <- err
	}); err != nil {
		return err
	}
	select {
	case err := <-res:
		return c.errClosedOr(err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// replay declares the recorded topology on a new connection before it is
// put in service. A declaration the broker refuses is logged and reported to
// the hooks and the others go on; a connection failure fails the replay.
func (t *topology) replay(ctx context.Context, conn *amqp.Connection, c *Client) error {
	t.mu.Lock()
	type step struct {
		kind, name string
		do         func(*amqp.Channel) error
	}
	var steps []step
	for _, e := range t.exchanges {
		steps = append(steps, step{"exchange", e.Name, e.declare})
	}
	for _, q := range t.queues {
		steps = append(steps, step{"queue", q.Name, func(ch *amqp.Channel) error { _, err := q.declare(ch); return err }})
	}
	for _, b := range t.bindings {
		steps = append(steps, step{"binding", b.Queue + "<-" + b.Exchange, b.declare})
	}
	t.mu.Unlock()
	if len(steps) == 0 {
		return nil
	}
	// Close ends a replay that the broker does not answer.
	stop := context.AfterFunc(ctx, func() { _ = conn.CloseDeadline(time.Now().Add(c.cfg.closeTimeout)) })
	defer stop()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	for _, s := range steps {
		if err := s.do(ch); err != nil {
			if conn.IsClosed() {
				return err
			}
			c.log.Error("lavinmq: replaying topology failed", "kind", s.kind, "name", s.name, "error", c.safeErr(err))
			c.eachHook(func(h any) {
				if h, ok := h.(HookTopologyError); ok {
					h.OnTopologyError(TopologyErrorEvent{Client: c.cfg.name, Kind: s.kind, Name: s.name, Err: err})
				}
			})
			if ch, err = conn.Channel(); err != nil {
				return err
			}
		}
	}
	_ = ch.Close()
	return nil
}
