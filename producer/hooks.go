package producer

import (
	"fmt"
	"runtime/debug"
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

// isHook reports whether h implements at least one hook interface: a value
// that implements none (a misspelt method) would silently do nothing.
func isHook(h any) bool {
	switch h.(type) {
	case HookProducerOpened, HookProducerClosed, HookConfirmed, HookWritten, HookDropped, HookResent:
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
}

func newHookSet(hooks []any) hookSet {
	var s hookSet
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
	}
	return s
}
