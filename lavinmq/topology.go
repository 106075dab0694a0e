package lavinmq

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Queue is a queue declaration. Declared through the Client, it is recorded
// and declared again after every reconnect.
type Queue struct {
	// Name "" asks the broker for a name. Such a queue is recorded under the
	// name the first declaration returned. At a replay it keeps its name if
	// it still exists on the broker (not exclusive, and survived the loss),
	// else the broker gives it a new one: QueueName(first name) returns the
	// current one.
	Name       string
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

// Binding binds a queue to an exchange, recorded like a Queue. Its identity
// is the queue, the exchange, the key and the arguments: two bindings that
// differ only in their arguments (headers exchange) are two bindings.
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
	return b.Queue == o.Queue && b.Exchange == o.Exchange && b.Key == o.Key && sameArgs(b.Args, o.Args)
}

func sameArgs(a, b amqp.Table) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

// queueRec is a recorded queue. orig is the key callers use (the name the
// first declaration returned); name is its name on the broker now. They
// differ only for a server-named queue after a replay.
type queueRec struct {
	decl Queue
	orig string
	name string
}

// topology is the record of declarations, replayed in order: exchanges,
// queues, bindings. Only what the broker accepted is recorded. Bindings name
// their queue by its key (queueRec.orig). All fields are guarded by mu.
type topology struct {
	mu        sync.Mutex
	exchanges []Exchange
	queues    []*queueRec
	bindings  []Binding
	consumers map[string]int // consumers on this client, by queue key
	snapshots uint64         // replays begun; a declaration that raced one is applied again
}

func (t *topology) queueLocked(name string) *queueRec {
	for _, r := range t.queues {
		if r.orig == name || r.name == name {
			return r
		}
	}
	return nil
}

// keyLocked and nameLocked map a queue name (its key or its current name) to
// its key and to its name on the broker; a queue not recorded keeps its name.
func (t *topology) keyLocked(name string) string {
	if r := t.queueLocked(name); r != nil {
		return r.orig
	}
	return name
}

func (t *topology) nameLocked(name string) string {
	if r := t.queueLocked(name); r != nil {
		return r.name
	}
	return name
}

func (t *topology) snapshot() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.snapshots
}

// commit records under the lock what the broker has accepted and reports
// whether a replay took its snapshot since snap: the connection that replay
// was for may lack the declaration, which must then be applied again.
func (t *topology) commit(snap uint64, record func()) (raced bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	record()
	return t.snapshots != snap
}

func (t *topology) forgetQueueLocked(r *queueRec) {
	t.queues = slices.DeleteFunc(t.queues, func(o *queueRec) bool { return o == r })
	t.bindings = slices.DeleteFunc(t.bindings, func(b Binding) bool { return b.Queue == r.orig })
}

// DeclareQueue declares q on the broker and, once the broker has accepted it,
// records it for replay after every reconnect. A declaration that cannot be
// sent (a name over 255 bytes, args amqp091-go cannot encode) fails with
// ErrInvalidTopology before anything is sent; one the broker refuses (406
// mismatch...) leaves the record as it was.
func (c *Client) DeclareQueue(ctx context.Context, q Queue) (amqp.Queue, error) {
	if err := q.Validate(); err != nil {
		return amqp.Queue{}, err
	}
	snap := c.topo.snapshot()
	var res amqp.Queue
	err := c.onChannel(ctx, q.size(), func(ch *amqp.Channel) (err error) {
		res, err = q.declare(ch)
		return err
	})
	if err != nil {
		return res, wrapTopo("declare queue", q.Name, err)
	}
	var again step
	raced := c.topo.commit(snap, func() {
		r := c.topo.queueLocked(q.Name)
		if q.Name != "" && r != nil {
			r.decl = q
		} else {
			r = &queueRec{decl: q, orig: res.Name, name: res.Name}
			c.topo.queues = append(c.topo.queues, r)
		}
		again = c.topo.queueStep(r)
	})
	if raced {
		if err = c.onChannel(ctx, again.size, again.do); errors.Is(err, errGone) {
			err = c.onChannel(ctx, again.size, again.do)
		}
	}
	return res, wrapTopo("declare queue", q.Name, ignoreForgotten(err))
}

// DeclareExchange declares e on the broker and, once accepted, records it for replay.
func (c *Client) DeclareExchange(ctx context.Context, e Exchange) error {
	if err := e.Validate(); err != nil {
		return err
	}
	snap := c.topo.snapshot()
	if err := c.onChannel(ctx, e.size(), e.declare); err != nil {
		return wrapTopo("declare exchange", e.Name, err)
	}
	raced := c.topo.commit(snap, func() {
		c.topo.exchanges = upsert(c.topo.exchanges, e, func(o Exchange) bool { return o.Name == e.Name })
	})
	var err error
	if raced {
		err = c.onChannel(ctx, e.size(), c.topo.exchangeStep(e).do)
	}
	return wrapTopo("declare exchange", e.Name, ignoreForgotten(err))
}

// BindQueue binds a queue to an exchange and, once accepted, records the
// binding for replay. The queue may be named by the name a server-named
// queue's first declaration returned: the binding follows the queue's
// current name.
func (c *Client) BindQueue(ctx context.Context, b Binding) error {
	if err := b.Validate(); err != nil {
		return err
	}
	snap := c.topo.snapshot()
	rec, send := c.topo.resolve(b)
	if err := c.onChannel(ctx, send.size(), send.declare); err != nil {
		return wrapTopo("bind queue", b.Queue, err)
	}
	raced := c.topo.commit(snap, func() {
		c.topo.bindings = upsert(c.topo.bindings, rec, rec.same)
	})
	var err error
	if raced {
		err = c.onChannel(ctx, send.size(), c.topo.bindingStep(rec).do)
	}
	return wrapTopo("bind queue", b.Queue, ignoreForgotten(err))
}

// resolve returns b as recorded (its queue by key) and as sent (its queue by
// current name).
func (t *topology) resolve(b Binding) (rec, send Binding) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rec, send = b, b
	rec.Queue, send.Queue = t.keyLocked(b.Queue), t.nameLocked(b.Queue)
	return rec, send
}

// UnbindQueue removes the binding that matches b (queue, exchange, key and
// args) from the record and from the broker; other bindings with the same
// key stay.
func (c *Client) UnbindQueue(ctx context.Context, b Binding) error {
	if err := b.Validate(); err != nil {
		return err
	}
	rec, send := c.topo.resolve(b)
	c.topo.mu.Lock()
	c.topo.bindings = slices.DeleteFunc(c.topo.bindings, rec.same)
	c.topo.mu.Unlock()
	return wrapTopo("unbind queue", b.Queue, c.onChannel(ctx, send.size(), func(ch *amqp.Channel) error {
		return ch.QueueUnbind(send.Queue, send.Key, send.Exchange, send.Args)
	}))
}

// DeleteQueue deletes a queue and forgets it and its bindings. It returns the
// number of messages the queue held.
func (c *Client) DeleteQueue(ctx context.Context, name string) (int, error) {
	if err := checkName("queue name", name); err != nil {
		return 0, err
	}
	c.topo.mu.Lock()
	cur := c.topo.nameLocked(name)
	if r := c.topo.queueLocked(name); r != nil {
		c.topo.forgetQueueLocked(r)
	}
	c.topo.mu.Unlock()
	var n int
	err := c.onChannel(ctx, methodSize(nil, cur), func(ch *amqp.Channel) (err error) {
		n, err = ch.QueueDelete(cur, false, false, false)
		return err
	})
	return n, wrapTopo("delete queue", name, err)
}

// DeleteExchange deletes an exchange and forgets it and its bindings.
func (c *Client) DeleteExchange(ctx context.Context, name string) error {
	if err := checkName("exchange name", name); err != nil {
		return err
	}
	c.topo.mu.Lock()
	c.topo.exchanges = slices.DeleteFunc(c.topo.exchanges, func(e Exchange) bool { return e.Name == name })
	c.topo.bindings = slices.DeleteFunc(c.topo.bindings, func(b Binding) bool { return b.Exchange == name })
	c.topo.mu.Unlock()
	return wrapTopo("delete exchange", name, c.onChannel(ctx, methodSize(nil, name), func(ch *amqp.Channel) error {
		return ch.ExchangeDelete(name, false, false)
	}))
}

// QueueName returns the name that a queue declared through the client has on
// the broker now. A server-named queue (declared with Name "") gets a new name
// at a reconnect unless it survived the loss: pass the name its first
// DeclareQueue returned (or any of its later names). A name the client has
// not recorded is returned unchanged.
func (c *Client) QueueName(name string) string {
	c.topo.mu.Lock()
	defer c.topo.mu.Unlock()
	return c.topo.nameLocked(name)
}

// RecordedQueue returns the declaration of queue (by its key or current
// name) as the application recorded it through DeclareQueue, and whether
// there is one. The consumer package uses it so that its own declaration
// never replaces the application's.
func (c *Client) RecordedQueue(name string) (Queue, bool) {
	c.topo.mu.Lock()
	defer c.topo.mu.Unlock()
	if r := c.topo.queueLocked(name); r != nil {
		return r.decl, true
	}
	return Queue{}, false
}

// ConsumeStarted tells the client that one more consumer on this client
// consumes queue (by its key or current name). The consumer package calls
// it; an application that consumes with its own channels may too. See
// ConsumeEnded.
func (c *Client) ConsumeStarted(queue string) {
	c.topo.mu.Lock()
	defer c.topo.mu.Unlock()
	if c.topo.consumers == nil {
		c.topo.consumers = make(map[string]int)
	}
	c.topo.consumers[c.topo.keyLocked(queue)]++
}

// ConsumeEnded tells the client that a consumer counted by ConsumeStarted no
// longer consumes queue. When onPurpose (the consumer was stopped, not lost
// with its connection) and it was the last one on this client, a recorded
// auto-delete queue is forgotten with its bindings: the broker deletes such a
// queue when its last consumer leaves, and a replay must not bring it back
// with no one to consume or delete it.
func (c *Client) ConsumeEnded(queue string, onPurpose bool) {
	c.topo.mu.Lock()
	defer c.topo.mu.Unlock()
	key := c.topo.keyLocked(queue)
	n, ok := c.topo.consumers[key]
	if !ok {
		return
	}
	if n > 1 {
		c.topo.consumers[key] = n - 1
		return
	}
	delete(c.topo.consumers, key)
	if r := c.topo.queueLocked(key); onPurpose && r != nil && r.decl.AutoDelete {
		c.topo.forgetQueueLocked(r)
		c.log.Info("lavinmq: forgot auto-delete queue after its last consumer stopped", "queue", r.name)
	}
}

func upsert[T any](list []T, v T, same func(T) bool) []T {
	if i := slices.IndexFunc(list, same); i >= 0 {
		list[i] = v
		return list
	}
	return append(list, v)
}

// wrapTopo names the operation and entity in err. Sentinels of the client
// (ErrClosed, ErrInvalidTopology) and ctx errors are returned as they are.
func wrapTopo(op, name string, err error) error {
	if err == nil || errors.Is(err, ErrClosed) || errors.Is(err, ErrInvalidTopology) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if len(name) > 64 {
		name = name[:64] + "..."
	}
	return fmt.Errorf("lavinmq: %s %q: %w", op, name, err)
}

// onChannel runs f on a fresh channel of the current connection, waiting for
// a connection if needed, and closes the channel on every path. size is the
// encoded size of the method f sends: one that does not fit in a frame of
// the connection is refused before anything is sent. The RPC runs on a
// tracked goroutine so that ctx ends the wait even when the broker does not
// answer; the goroutine closes the channel when the RPC returns.
func (c *Client) onChannel(ctx context.Context, size int, f func(*amqp.Channel) error) error {
	cn, err := c.Connection(ctx)
	if err != nil {
		return err
	}
	if err := checkFrame(cn.conn, size); err != nil {
		return err
	}
	res := make(chan error, 1)
	if err := c.goTracked(func() {
		ch, err := cn.Channel()
		if err == nil {
			err = f(ch)
			_ = ch.Close() // already closed (nil or ErrClosed) after a channel error
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
