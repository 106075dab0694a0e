package lavinmq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cenkalti/backoff/v5"
	amqp "github.com/rabbitmq/amqp091-go"
)

// maxTopologyRetryDelay caps the backoff of replay steps retried after a
// passing refusal, so that they follow the broker's cleanup of the dead
// connection closely even with a long reconnect cap.
const maxTopologyRetryDelay = 5 * time.Second

// errForgotten ends a replay step whose entity is no longer recorded (the
// user deleted it, or it was an auto-delete queue whose consumers stopped).
var errForgotten = errors.New("lavinmq: declaration no longer recorded")

// errGone asks for a queue step to run again on a fresh channel: the
// server-named queue it checked is gone and needs a new name.
var errGone = errors.New("lavinmq: server-named queue gone")

func ignoreForgotten(err error) error {
	if errors.Is(err, errForgotten) {
		return nil
	}
	return err
}

// step is one replayed declaration. do reads the record when it runs, so a
// step taken from an old snapshot declares what is recorded now, or returns
// errForgotten.
type step struct {
	kind  string // "exchange", "queue" or "binding", as reported to HookTopologyError
	name  string // the entity, as reported
	queue string // the queue key of a queue or binding step
	size  int    // encoded size of the method, checked against the frame size
	do    func(*amqp.Channel) error
}

func (t *topology) exchangeStep(e Exchange) step {
	return step{kind: "exchange", name: e.Name, size: e.size(), do: func(ch *amqp.Channel) error {
		t.mu.Lock()
		i := slices.IndexFunc(t.exchanges, func(o Exchange) bool { return o.Name == e.Name })
		var cur Exchange
		if i >= 0 {
			cur = t.exchanges[i]
		}
		t.mu.Unlock()
		if i < 0 {
			return errForgotten
		}
		return cur.declare(ch)
	}}
}

// queueStep declares r again. A server-named queue that is exclusive died
// with its connection and gets a new name; one that is not may have survived
// (durable, or not auto-delete): a passive declare keeps its name if it
// exists, else the step returns errGone (the 404 closed the channel) and,
// run again on a fresh channel, declares a new one. The new name becomes the
// queue's current name (its bindings and QueueName follow it). Call
// queueStep with t.mu held (it reads r.decl); run the step on one goroutine
// at a time.
func (t *topology) queueStep(r *queueRec) step {
	gone := false // set when the passive declare found the server-named queue gone
	return step{kind: "queue", name: r.orig, queue: r.orig, size: r.decl.size(), do: func(ch *amqp.Channel) error {
		t.mu.Lock()
		live, q, name := slices.Contains(t.queues, r), r.decl, r.name
		t.mu.Unlock()
		if !live {
			return errForgotten
		}
		if q.Name == "" && !q.Exclusive && !gone {
			_, err := ch.QueueDeclarePassive(name, q.Durable, q.AutoDelete, false, false, q.Args)
			var ae *amqp.Error
			if errors.As(err, &ae) && ae.Code == amqp.NotFound {
				gone = true
				return errGone
			}
			return err // nil: it survived under its name
		}
		gone = false
		res, err := q.declare(ch)
		if err != nil {
			return err
		}
		if q.Name == "" {
			t.mu.Lock()
			r.name = res.Name
			t.mu.Unlock()
		}
		return nil
	}}
}

// bindingStep binds b (its queue by key) to the queue's current name.
func (t *topology) bindingStep(b Binding) step {
	return step{kind: "binding", name: fmt.Sprintf("%s<-%s:%s", b.Queue, b.Exchange, b.Key), queue: b.Queue, size: b.size(),
		do: func(ch *amqp.Channel) error {
			t.mu.Lock()
			live := slices.ContainsFunc(t.bindings, b.same)
			send := b
			send.Queue = t.nameLocked(b.Queue)
			t.mu.Unlock()
			if !live {
				return errForgotten
			}
			return send.declare(ch)
		}}
}

func (t *topology) stepsLocked() []step {
	steps := make([]step, 0, len(t.exchanges)+len(t.queues)+len(t.bindings))
	for _, e := range t.exchanges {
		steps = append(steps, t.exchangeStep(e))
	}
	for _, r := range t.queues {
		steps = append(steps, t.queueStep(r))
	}
	for _, b := range t.bindings {
		steps = append(steps, t.bindingStep(b))
	}
	return steps
}

// replay declares the recorded topology on a new connection before it is
// put in service. A declaration the broker refuses is reported (log and
// HookTopologyError) and the others go on; a connection failure fails the
// replay. Steps refused for a reason that passes (405 RESOURCE_LOCKED: an
// exclusive queue still held by the dead connection, which the broker has not
// noticed yet) are retried with backoff on a goroutine of the client while
// the connection is in service, until they succeed, their entity is
// forgotten, the connection is lost (the next one replays everything) or the
// client is closed. Holding the whole client out of service for them would
// stop every producer and consumer for as long as the broker takes to notice.
func (t *topology) replay(ctx context.Context, conn *amqp.Connection, c *Client) error {
	t.mu.Lock()
	t.snapshots++
	steps := t.stepsLocked()
	t.mu.Unlock()
	if len(steps) == 0 {
		return nil
	}
	// Close ends a replay that the broker does not answer.
	stop := context.AfterFunc(ctx, func() { _ = conn.CloseDeadline(time.Now().Add(c.cfg.closeTimeout)) })
	defer stop()
	retry, err := c.runSteps(conn, steps)
	if err != nil {
		return err
	}
	if len(retry) > 0 {
		_ = c.goTracked(func() { c.retryTopology(conn, retry) }) // ErrClosed: nothing to retry for
	}
	return nil
}

// runSteps runs steps in order on conn, on one channel that is reopened after
// each refusal. It returns the steps to retry: those refused for a reason
// that passes, and the bindings of a queue being retried (not tried: they
// would fail the same way). The error is that of a failed connection.
func (c *Client) runSteps(conn *amqp.Connection, steps []step) ([]step, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	var retry []step
	waiting := make(map[string]bool) // queue keys being retried
	for _, s := range steps {
		if s.kind == "binding" && waiting[s.queue] {
			retry = append(retry, s)
			continue
		}
		if err := checkFrame(conn, s.size); err != nil {
			c.reportTopologyError(s.kind, s.name, err)
			continue
		}
		err := s.do(ch)
		if errors.Is(err, errGone) {
			if ch, err = conn.Channel(); err != nil {
				return nil, err
			}
			err = s.do(ch)
		}
		if err == nil || errors.Is(err, errForgotten) {
			continue
		}
		if conn.IsClosed() {
			return nil, err
		}
		c.reportTopologyError(s.kind, s.name, err)
		if passes(err) {
			retry = append(retry, s)
			if s.kind == "queue" {
				waiting[s.queue] = true
			}
		}
		_ = ch.Close() // the broker has closed it after a refusal
		if ch, err = conn.Channel(); err != nil {
			return nil, err
		}
	}
	_ = ch.Close()
	return retry, nil
}

// retryTopology runs steps again with backoff until none is left, conn is
// lost or the client is closed. It runs on a goroutine tracked by c.wg.
func (c *Client) retryTopology(conn *amqp.Connection, steps []step) {
	lost := conn.NotifyClose(make(chan *amqp.Error, 1)) // buffered: amqp091 sends once, then closes
	b := &backoff.ExponentialBackOff{
		InitialInterval:     c.cfg.initialDelay,
		RandomizationFactor: c.cfg.jitter,
		Multiplier:          c.cfg.multiplier,
		MaxInterval:         min(c.cfg.maxDelay, maxTopologyRetryDelay),
	}
	for attempt := 1; len(steps) > 0; attempt++ {
		delay := b.NextBackOff()
		c.log.Info("lavinmq: retrying topology", "steps", len(steps), "attempt", attempt, "delay", delay)
		select {
		case <-c.cfg.after(delay):
		case <-lost:
			return
		case <-c.ctx.Done():
			return
		}
		var err error
		if steps, err = c.runSteps(conn, steps); err != nil {
			return
		}
	}
	c.log.Info("lavinmq: topology retried successfully")
}

// passes reports whether the broker refused a replayed declaration for a
// reason that passes by itself: 405 RESOURCE_LOCKED, an exclusive queue held
// by another connection (usually our own dead one, not yet noticed).
func passes(err error) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && ae.Code == amqp.ResourceLocked
}

// reportTopologyError logs a refused replay step and reports it to the hooks.
// It is the one place that calls HookTopologyError.
func (c *Client) reportTopologyError(kind, name string, err error) {
	c.log.Error("lavinmq: replaying topology failed", "kind", kind, "name", name, "error", c.safeErr(err))
	c.eachHook(func(h any) {
		if h, ok := h.(HookTopologyError); ok {
			h.OnTopologyError(TopologyErrorEvent{Client: c.cfg.name, Kind: kind, Name: name, Err: err})
		}
	})
}
