package producer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

// maxBurst bounds how many messages the publisher writes before it looks at
// confirmations again.
const maxBurst = 256

// pubState is owned by the publisher goroutine.
type pubState struct {
	fl       flight     // published on the current channel, unsettled (Confirm mode)
	resend   []envelope // unsettled on an earlier channel, to publish first, in order
	resendAt int
	stash    *envelope // popped from the ring while arming the wake-up, not yet published
	returned map[string]struct{}
	replace  bool // a nack: replace the channel
	acked    bool // the session had at least one ack (FireAndForget: a write)
	// burst holds the FireAndForget messages of the burst being written: in
	// the connection's cork, not yet on the socket (see endBurst).
	burst []envelope

	// inFlightIDs holds the MessageID of every message in the flight when
	// mandatory is on. A basic.return names its message only by its
	// properties, so two messages with one ID in flight together (the same
	// event to two routing keys) could have a return matched to the wrong
	// one: a message whose ID is in flight waits until that one settles.
	inFlightIDs map[string]struct{}

	// The poison budget: the message (by seq) that was the first unconfirmed
	// one when the broker last closed the channel or connection for a reason
	// that points at a message, and how many such closes in a row, with no ack
	// in between, it has been first for.
	poisonSeq  uint64
	poisonHits int
	// probe: the last channel or connection was closed for a reason that
	// points at a message, but not at which one (the broker confirms
	// asynchronously, so the first unconfirmed message need not be the one
	// that caused it). Until the next ack, messages are published one at a
	// time, so that a loss with one message in flight names it.
	probe bool

	key  string        // routing key of the current session (a server-named queue's current name)
	conn *lavinmq.Conn // the current session's connection
}

// canSend reports whether the flight has room for one more publish.
func (st *pubState) canSend() bool {
	return !st.fl.full() && !(st.probe && st.fl.len() > 0)
}

func (st *pubState) hasResend() bool { return st.resendAt < len(st.resend) || st.stash != nil }

// next returns the next message to publish: re-sends first, then the buffer.
func (st *pubState) next(p *Producer) (envelope, bool) {
	if st.resendAt < len(st.resend) {
		env := st.resend[st.resendAt]
		st.resend[st.resendAt] = envelope{}
		st.resendAt++
		return env, true
	}
	if st.stash != nil {
		env := *st.stash
		st.stash = nil
		return env, true
	}
	return p.take() // none while the publisher holds its share of the byte budget
}

// unshift puts back a message whose publish failed, to be the next one.
func (st *pubState) unshift(env envelope) {
	if st.resendAt > 0 {
		st.resendAt--
		st.resend[st.resendAt] = env
		return
	}
	st.resend = append([]envelope{env}, st.resend...)
}

// requeueUnsettled moves what the flight did not settle in front of the
// remaining re-sends, keeping publish order.
func (st *pubState) requeueUnsettled() int {
	unsettled := st.fl.takeUnsettled(nil)
	if len(unsettled) == 0 {
		return 0
	}
	for i := range unsettled {
		unsettled[i].resent = true
	}
	st.resend = append(unsettled, st.resend[st.resendAt:]...)
	st.resendAt = 0
	return len(unsettled)
}

// run is the publisher goroutine. It starts holding stMu (locked by New).
func (p *Producer) run() {
	defer func() {
		close(p.done)
		p.stMu.Unlock()
	}()
	inflight := 1
	if p.cfg.mode == Confirm {
		inflight = p.cfg.maxInFlight
	}
	st := &pubState{fl: newFlight(inflight), returned: map[string]struct{}{}, inFlightIDs: map[string]struct{}{}}
	p.st = st
	bo := &backoff.ExponentialBackOff{
		InitialInterval:     p.cfg.reopenDelay,
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         p.cfg.reopenMaxDelay,
	}
	bo.Reset()
	declared := !p.cfg.declare
	for p.runCtx.Err() == nil {
		cn, err := p.client.Connection(p.runCtx)
		if err != nil {
			if errors.Is(err, lavinmq.ErrClosed) {
				p.log.Warn("producer: client closed, stopping; unsettled messages are reported with reason shutdown")
			}
			break
		}
		if !declared {
			_, err := p.client.DeclareQueue(p.runCtx, lavinmq.Queue{Name: p.queue, Durable: true, Args: p.cfg.declareArgs})
			if err == nil {
				declared = true
			} else {
				p.noteCause(err)
				d := bo.NextBackOff()
				p.log.Warn("producer: declaring the queue failed, retrying", "err", err, "retry_in", d)
				p.pause(d, cn)
				continue
			}
		}
		st.acked = false
		p.session(cn, st)
		if p.orphaned { // Close reported everything in our place
			return
		}
		if st.acked {
			bo.Reset()
		}
		select {
		case <-cn.Done(): // the client brings the next connection
			continue
		default:
		}
		if p.runCtx.Err() == nil {
			p.pause(bo.NextBackOff(), cn)
		}
	}
	p.shutdown(st)
}

// pause waits d, or until the connection is lost or the producer stops.
func (p *Producer) pause(d time.Duration, cn *lavinmq.Conn) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-cn.Done():
	case <-p.runCtx.Done():
	}
}

// session publishes on one channel until the channel or the connection is
// lost, a nack asks for a new channel, or the producer stops.
//
// The calls that wait for the broker (channel open, confirm.select, publish,
// channel close) run through unlocked: a blocked broker holds them up until
// its alarm clears, and Close may take the state over meanwhile (orphaned),
// after which session returns at once without touching st.
func (p *Producer) session(cn *lavinmq.Conn, st *pubState) {
	st.key, st.conn = p.key, cn
	if !p.cfg.routingSet {
		// The default exchange routes by queue name: a server-named queue
		// declared through the client gets a new name after a reconnect.
		st.key = p.client.QueueName(p.queue)
	}
	var ch *amqp.Channel
	var err error
	if p.unlocked(func() { ch, err = cn.Channel() }) || err != nil {
		if err == nil {
			p.unlocked(func() { _ = ch.Close() })
		} else if !p.orphaned {
			p.noteCause(err)
			p.log.Debug("producer: open channel failed", "err", err)
		}
		return
	}
	closeCh := ch.NotifyClose(make(chan *amqp.Error, 1))
	var confirms <-chan amqp.Confirmation
	var returns <-chan amqp.Return
	if p.cfg.mode == Confirm {
		if p.unlocked(func() { err = ch.Confirm(false) }) || err != nil {
			if !p.orphaned {
				p.noteCause(err)
				p.log.Warn("producer: enabling confirm mode failed", "err", err)
			}
			p.unlocked(func() { _ = ch.Close() })
			return
		}
		// Buffered for every message that can be in flight: amqp091-go's
		// reader goroutine blocks on these sends.
		confirms = ch.NotifyPublish(make(chan amqp.Confirmation, p.cfg.maxInFlight+1))
		if p.mandatory {
			returns = ch.NotifyReturn(make(chan amqp.Return, p.cfg.maxInFlight+1))
		}
	}
	var endErr *amqp.Error // why the broker or amqp091-go closed the channel, when known
	var writeFailed uint64 // seq of a message whose write failed on this channel (I/O error)
	defer func() {
		if endErr == nil {
			select {
			case endErr = <-closeCh:
			case <-cn.Done():
				// amqp091-go tells the connection's listeners before it
				// closes the channels: the channel's error follows at once.
				select {
				case endErr = <-closeCh:
				case <-time.After(50 * time.Millisecond):
				}
			default:
			}
		}
		// A blocked broker answers channel.close only once its alarm
		// clears; Close takes the state over if its ctx ends meanwhile.
		if p.unlocked(func() { _ = ch.Close() }) {
			return
		}
		// Acks that arrived before the end still count.
		p.drainConfirms(st, confirms, returns)
		p.chargePoison(st, endErr, writeFailed)
		if n := st.requeueUnsettled(); n > 0 {
			p.log.Info("producer: channel ended, unconfirmed messages will be published again first", "count", n)
		}
		clear(st.returned)
		clear(st.inFlightIDs)
		st.replace = false
	}()

	// await waits for a confirmation, for wake, or for the end of the
	// session, and reports whether the session is over.
	await := func(wake <-chan struct{}) bool {
		select {
		case c, ok := <-confirms:
			if !ok {
				confirms = nil // closed with the channel: closeCh or cn.Done follows
			} else {
				p.onConfirm(st, c, returns)
				// The broker acks in batches: take the rest of this one
				// too, so that the next burst fills what they freed.
				p.drainConfirms(st, confirms, returns)
			}
		case <-wake:
		case e := <-closeCh:
			endErr = e
			p.channelClosed(st, e)
			return true
		case <-cn.Done():
			return true
		case <-p.runCtx.Done():
			return true
		}
		return false
	}
	// awaitLoss waits, after a failed write, for the channel or the
	// connection to be reported lost.
	awaitLoss := func() {
		select {
		case e := <-closeCh:
			endErr = e
			p.channelClosed(st, e)
		case <-cn.Done():
		case <-p.runCtx.Done():
		case <-time.After(time.Second): // neither fired: end the channel anyway
		}
	}
	for {
		if blocked, changed := p.client.Blocked(); blocked {
			p.log.Info("producer: connection blocked by the broker, publishing paused")
			if await(changed) {
				return
			}
			continue
		}
		n := 0
		held, heldID := false, ""
		// One burst is written under one cork: in one write to the socket
		// instead of one per message (burst.go). It ends before any wait.
		uncork, mark := cn.Cork(), st.fl.next
		for n < maxBurst && !st.replace && st.canSend() {
			env, ok := st.next(p)
			if !ok {
				break
			}
			if err := p.publish(ch, st, &env); err != nil {
				if err == errSameID {
					st.unshift(env) // published once the one in flight with its ID settles
					held, heldID = true, env.msg.MessageID
					break
				}
				if p.orphaned {
					p.abandonBurst(uncork)
					return
				}
				p.noteCause(err)
				if encodingError(err) {
					// Validation let through something amqp091-go cannot
					// encode: drop it now, never re-send it. (amqp091-go
					// closes the connection after any failed frame write.)
					p.log.Error("producer: message could not be encoded; dropped with reason invalid", "err", err, "message_id", p.idOf(&env))
					p.drop(&env, Invalid)
				} else {
					writeFailed = env.seq
					st.unshift(env)
				}
				p.log.Debug("producer: publish failed", "err", err)
				if _, orphaned := p.endBurst(uncork, st, mark, &writeFailed); !orphaned {
					awaitLoss()
				}
				return
			}
			n++
		}
		if err, orphaned := p.endBurst(uncork, st, mark, &writeFailed); orphaned {
			return
		} else if err != nil {
			p.noteCause(err)
			p.log.Debug("producer: writing a burst failed", "err", err, "messages", n)
			awaitLoss()
			return
		}
		p.drainConfirms(st, confirms, returns)
		if st.replace {
			p.log.Info("producer: broker nacked a message, replacing the channel")
			return
		}
		if n > 0 {
			continue
		}
		if held {
			if _, inFlight := st.inFlightIDs[heldID]; !inFlight {
				continue // settled meanwhile: no confirm is left to wait for
			}
		}
		var wake <-chan struct{}
		if st.canSend() && !st.hasResend() && p.canTake() { // else a confirm wakes us
			wake = p.ring.NotEmpty()
			if env, ok := p.take(); ok { // re-check after arming
				st.stash = &env
				continue
			}
		}
		if await(wake) {
			return
		}
	}
}

func (p *Producer) publish(ch *amqp.Channel, st *pubState, env *envelope) error {
	if b := p.brokerMax.Load(); b > 0 && int64(len(env.msg.Body)) > b {
		p.drop(env, TooLarge)
		return nil
	}
	confirm := p.cfg.mode == Confirm
	if env.msg.MessageID == "" && confirm { // FireAndForget never re-sends: no ID needed to de-duplicate
		env.msg.MessageID = p.newID(env.seq)
	}
	if p.mandatory {
		if _, dup := st.inFlightIDs[env.msg.MessageID]; dup {
			return errSameID
		}
		st.inFlightIDs[env.msg.MessageID] = struct{}{}
	}
	if confirm {
		st.fl.add(*env)
	} else {
		st.burst = append(st.burst, *env) // settled by endBurst once written
	}
	// As in unlocked, without a closure on the hot path.
	p.stMu.Unlock()
	key := st.key
	if env.msg.RoutingKey != "" {
		key = env.msg.RoutingKey
	}
	err := ch.PublishWithContext(context.Background(), p.exchange, key, p.mandatory, false, env.msg.publishing(p.defaultMode))
	p.stMu.Lock()
	if p.orphaned {
		return errOrphaned // Close reported env and everything else
	}
	if err != nil {
		if confirm {
			*env = st.fl.unadd()
		} else {
			*env = st.burst[len(st.burst)-1]
			st.burst[len(st.burst)-1] = envelope{}
			st.burst = st.burst[:len(st.burst)-1]
		}
		if p.mandatory {
			delete(st.inFlightIDs, env.msg.MessageID)
		}
		return err
	}
	p.traceSent(st.conn, env)
	if env.resent {
		p.resent.Add(1)
		for _, h := range p.hooks.resent {
			p.hookResent(h, 1)
		}
	}
	return nil
}

// errSameID: a message with the same MessageID is in flight (see inFlightIDs).
var errSameID = errors.New("producer: a message with this ID is in flight")

// errOrphaned: Close took the publisher's state over during a network call.
var errOrphaned = errors.New("producer: closed during a network call")

// unlocked runs f, a call that waits on the broker, without holding stMu,
// and reports whether Close took the state over meanwhile: then the caller
// must return without touching st.
func (p *Producer) unlocked(f func()) (orphaned bool) {
	p.stMu.Unlock()
	f()
	p.stMu.Lock()
	return p.orphaned
}

// drainConfirms handles the confirmations already received, without waiting.
func (p *Producer) drainConfirms(st *pubState, confirms <-chan amqp.Confirmation, returns <-chan amqp.Return) {
	if confirms == nil {
		return
	}
	for {
		select {
		case c, ok := <-confirms:
			if !ok {
				return
			}
			p.onConfirm(st, c, returns)
		default:
			return
		}
	}
}

func (p *Producer) onConfirm(st *pubState, c amqp.Confirmation, returns <-chan amqp.Return) {
	// The broker sends basic.return before the ack of the same message, and
	// amqp091-go delivers both from one goroutine in that order: every
	// return for this ack is already buffered.
	for draining := returns != nil; draining; {
		select {
		case r, ok := <-returns:
			if !ok {
				draining = false
				break
			}
			st.returned[r.MessageId] = struct{}{}
		default:
			draining = false
		}
	}
	s := st.fl.get(c.DeliveryTag)
	if s == nil || s.done {
		return
	}
	switch {
	case c.Ack:
		st.acked = true // a nack is no success: a nack loop backs off like a reconnect
		st.probe = false
		if _, ok := st.returned[s.env.msg.MessageID]; ok {
			delete(st.returned, s.env.msg.MessageID)
			p.drop(&s.env, Unroutable)
		} else {
			p.confirm(&s.env)
		}
		s.done = true
		delete(st.inFlightIDs, s.env.msg.MessageID)
	default:
		s.env.attempts++
		p.traceNacked(&s.env)
		p.noteCause(fmt.Errorf("producer: the broker nacked message %s (attempt %d of %d)", p.idOf(&s.env), s.env.attempts, p.cfg.retryBudget))
		if int(s.env.attempts) >= p.cfg.retryBudget {
			p.drop(&s.env, Nacked)
			s.done = true
			delete(st.inFlightIDs, s.env.msg.MessageID)
		} else {
			st.replace = true
		}
	}
	st.fl.advance()
}

// channelClosed reacts to the broker closing the channel (the connection is
// fine): messages are kept and published again on the next channel, except
// those over a max message size the broker just told us about.
func (p *Producer) channelClosed(st *pubState, e *amqp.Error) {
	if e == nil {
		return
	}
	p.noteCause(e)
	if !channelLevel(e.Code) { // the whole connection went: the client reconnects
		p.log.Debug("producer: channel ended with its connection", "code", e.Code, "reason", e.Reason)
		return
	}
	p.log.Warn("producer: broker closed the channel, reopening it with backoff", "code", e.Code, "reason", e.Reason)
	if max := brokerMaxSize(e); max > 0 {
		p.brokerMax.Store(max)
		for t := st.fl.head; t < st.fl.next; t++ {
			if s := st.fl.get(t); !s.done && int64(len(s.env.msg.Body)) > max {
				p.drop(&s.env, TooLarge)
				s.done = true
				delete(st.inFlightIDs, s.env.msg.MessageID)
			}
		}
		st.fl.advance()
	}
}

// channelLevel reports whether an AMQP reply code closes only a channel
// (the soft errors of AMQP 0-9-1), not the connection.
func channelLevel(code int) bool {
	switch code {
	case amqp.ContentTooLarge, amqp.NoConsumers, amqp.AccessRefused, amqp.NotFound, amqp.ResourceLocked, amqp.PreconditionFailed:
		return true
	}
	return false
}

// brokerMaxSize reads RabbitMQ's "message size N is larger than configured
// max size M" refusal and returns M, or 0.
func brokerMaxSize(e *amqp.Error) int64 {
	const marker = "max size "
	if e.Code != amqp.PreconditionFailed {
		return 0
	}
	i := strings.LastIndex(e.Reason, marker)
	if i < 0 {
		return 0
	}
	digits := e.Reason[i+len(marker):]
	end := 0
	for end < len(digits) && digits[end] >= '0' && digits[end] <= '9' {
		end++
	}
	n, err := strconv.ParseInt(digits[:end], 10, 64)
	if err != nil || n <= 0 {
		return 0
	}
	return n
}

// shutdown reports everything not settled with reason Shutdown.
func (p *Producer) shutdown(st *pubState) {
	p.stopAccepting()
	st.burstBack()
	st.requeueUnsettled()
	for {
		env, ok := st.next(p)
		if !ok {
			break
		}
		p.drop(&env, Shutdown)
	}
	for { // next stops at the byte budget's take cap: the rest of the buffer
		env, ok := p.ring.TryPop()
		if !ok {
			break
		}
		p.drop(&env, Shutdown)
	}
	st.resend, st.resendAt = nil, 0
	final := p.Stats()
	for _, h := range p.hooks.closed {
		p.hookClosed(h, final)
	}
}
