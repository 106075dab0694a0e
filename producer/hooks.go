package producer

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// Hooks are values passed to WithHooks; the producer calls the methods of the
// interfaces a value implements. They run on the producer's goroutines (the
// publisher, or the caller of Publish for evictions), never on amqp091-go's
// I/O goroutine, and must return quickly. A hook that panics is recovered and
// logged (at error level); the producer goes on.

// HookProducerOpened is called by New with the new producer; metrics
// collectors read its Stats at scrape time.
type HookProducerOpened interface {
	OnProducerOpened(p *Producer)
}

// HookProducerClosed is called once the producer has stopped (Close, or the
// client's Close), with its final Stats.
type HookProducerClosed interface {
	OnProducerClosed(p *Producer, final Stats)
}

// HookConfirmed is called for every message acked by the broker (Confirm
// mode) with the time from Publish to the ack. FireAndForget calls
// HookWritten instead: a socket write is not a confirm.
type HookConfirmed interface {
	OnConfirmed(queue string, latency time.Duration)
}

// HookWritten is called in FireAndForget mode for every message handed to
// the socket (where Confirm mode would call HookConfirmed). The message counts
// as settled (Stats.Confirmed) but the broker has not acknowledged it.
type HookWritten interface {
	OnWritten(queue string)
}

// HookDropped is called for every dropped message, next to the OnDrop callback.
type HookDropped interface {
	OnDropped(queue string, reason DropReason)
}

// HookResent is called when unconfirmed messages are published again after a
// lost channel or connection, or a nack.
type HookResent interface {
	OnResent(queue string, n int)
}

// HookMessage follows each message from Publish until it settles, with a
// handle of the hook's own per message: the tracing package implements it to
// give every message a span. The producer calls OnMessagePublish once per
// message, OnMessageSent for every write of it on a channel, OnMessageNacked
// for every nack, and OnMessageSettled exactly once at the end; each call
// gets the handle OnMessagePublish returned. Without a HookMessage, Publish
// costs what it did (no allocation, no call).
type HookMessage interface {
	// OnMessagePublish is called by Publish (and PublishSync) on the
	// caller's goroutine, once m has passed validation and before it is
	// buffered, with Publish's ctx. It may set m.Headers, to carry trace
	// context: it must then put there a new table holding the caller's
	// entries and its own, never write to the table m.Headers held (the
	// caller may share it between messages). The message is published, and
	// re-sent, with the headers set here, so every copy the broker gets
	// carries the same ones. When they make the message one Publish would
	// refuse (properties over one frame), the producer publishes it with the
	// caller's headers, logs that once (WithLogger) and calls
	// OnMessageHeadersRefused. The value returned is kept with the message
	// and passed to the other methods; the producer never looks into it.
	OnMessagePublish(ctx context.Context, ev MessagePublishEvent, m *Message) (handle any)
	// OnMessageHeadersRefused is called right after OnMessagePublish, on the
	// same goroutine, when the headers it set did not fit (err says why): the
	// message goes out with the caller's headers only.
	OnMessageHeadersRefused(handle any, err error)
	// OnMessageSent is called on the publisher goroutine each time the
	// message has been written on a channel: the first publish and every
	// re-send after a lost channel or connection, or a nack.
	OnMessageSent(handle any, ev MessageSentEvent)
	// OnMessageNacked is called when the broker nacked the message, with the
	// number of nacks so far. It is published again on a new channel, unless
	// the retry budget is spent (OnMessageSettled with reason Nacked follows).
	OnMessageNacked(handle any, attempt int)
	// OnMessageSettled is called exactly once per message OnMessagePublish was
	// called for: confirmed (written, in FireAndForget), dropped with a
	// reason (next to OnDrop), or not accepted after all (Publish returned an
	// error once OnMessagePublish had run: a full buffer under Raise, ctx
	// ended under Block, Close).
	OnMessageSettled(handle any, ev MessageSettledEvent)
}

// MessagePublishEvent describes a message Publish is about to buffer.
type MessagePublishEvent struct {
	Client     string // the client's Name
	Queue      string // the producer's queue, as given to New
	Exchange   string // the exchange it is published to ("": the default exchange)
	RoutingKey string // the routing key it is published with
	// MessageID is the ID it is published with: its own, or in Confirm mode
	// the one the producer generates for it; "" in FireAndForget when it has none.
	MessageID string
	// Endpoint is the client's Endpoint (host:port of the connection in
	// service, or of its first URL while disconnected); never credentials.
	Endpoint string
	Mode     Mode
}

// MessageSentEvent describes one write of a message on a channel.
type MessageSentEvent struct {
	// Resent: it was published before, on an earlier channel. Connection
	// tells a re-send after a reconnect (a higher Connection than the last
	// write's) from one on a new channel of the same connection (after a nack
	// or a channel error).
	Resent     bool
	Connection uint64 // the connection's Generation (1 for the client's first)
	Endpoint   string // host:port of that connection
}

// MessageSettledEvent says how a message ended.
type MessageSettledEvent struct {
	// Accepted is false for a message Publish returned an error for after
	// OnMessagePublish had run: it was never buffered, and Err is Publish's error.
	Accepted bool
	// Reason is 0 when the message was confirmed by the broker (Confirm) or
	// written to the socket (FireAndForget); otherwise why it was dropped.
	Reason DropReason
	// Err is nil when confirmed; for a drop, the *DropError PublishSync
	// would return (reason, message ID, routing key and, when known, cause).
	Err error
}

// isHook reports whether h implements at least one hook interface: a value
// that implements none (a misspelt method) would silently do nothing.
func isHook(h any) bool {
	switch h.(type) {
	case HookProducerOpened, HookProducerClosed, HookConfirmed, HookWritten, HookDropped, HookResent, HookMessage:
		return true
	}
	return false
}

// recoverHook, deferred around a hook or callback call, turns its panic into
// an error log so that the goroutine calling it goes on.
func (p *Producer) recoverHook(what string) {
	if v := recover(); v != nil {
		p.log.Error("producer: hook panicked; recovered", "hook", what, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	}
}

func (p *Producer) hookOpened(h HookProducerOpened) {
	defer p.recoverHook("OnProducerOpened")
	h.OnProducerOpened(p)
}

func (p *Producer) hookClosed(h HookProducerClosed, s Stats) {
	defer p.recoverHook("OnProducerClosed")
	h.OnProducerClosed(p, s)
}

func (p *Producer) hookConfirmed(h HookConfirmed, lat time.Duration) {
	defer p.recoverHook("OnConfirmed")
	h.OnConfirmed(p.queue, lat)
}

func (p *Producer) hookWritten(h HookWritten) {
	defer p.recoverHook("OnWritten")
	h.OnWritten(p.queue)
}

func (p *Producer) hookDropped(h HookDropped, r DropReason) {
	defer p.recoverHook("OnDropped")
	h.OnDropped(p.queue, r)
}

func (p *Producer) hookResent(h HookResent, n int) {
	defer p.recoverHook("OnResent")
	h.OnResent(p.queue, n)
}

type hookSet struct {
	opened    []HookProducerOpened
	closed    []HookProducerClosed
	confirmed []HookConfirmed
	written   []HookWritten
	dropped   []HookDropped
	resent    []HookResent
	message   []HookMessage
	// refusedLogged: the producer has logged that a HookMessage's headers did
	// not fit a message (logged once per producer).
	refusedLogged *atomic.Bool
}

func newHookSet(hooks []any) hookSet {
	s := hookSet{refusedLogged: new(atomic.Bool)}
	for _, h := range hooks {
		if x, ok := h.(HookProducerOpened); ok {
			s.opened = append(s.opened, x)
		}
		if x, ok := h.(HookProducerClosed); ok {
			s.closed = append(s.closed, x)
		}
		if x, ok := h.(HookConfirmed); ok {
			s.confirmed = append(s.confirmed, x)
		}
		if x, ok := h.(HookWritten); ok {
			s.written = append(s.written, x)
		}
		if x, ok := h.(HookDropped); ok {
			s.dropped = append(s.dropped, x)
		}
		if x, ok := h.(HookResent); ok {
			s.resent = append(s.resent, x)
		}
		if x, ok := h.(HookMessage); ok {
			s.message = append(s.message, x)
		}
	}
	return s
}
