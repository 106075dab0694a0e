package producer

import (
	"context"

	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

// The HookMessage calls. Each call site is one line: a method small enough to
// be inlined, which tests len(p.hooks.message) and does nothing more without
// such a hook (no call, no allocation, no escape of the envelope); the work is
// in a separate method. With several HookMessage values, env.trace holds a
// []any of their handles, in hook order.

// traceStart runs OnMessagePublish for a message Publish is about to buffer.
func (p *Producer) traceStart(ctx context.Context, env *envelope) {
	if len(p.hooks.message) != 0 {
		env.msg, env.trace, env.size = p.startMessage(ctx, env.msg, env.seq, env.size)
	}
}

// size is the message's size as Publish checked it; the size returned is
// that of the message returned (with the hook's headers, when they fit).
func (p *Producer) startMessage(ctx context.Context, m Message, seq uint64, size int64) (Message, any, int64) {
	ev := MessagePublishEvent{
		Client:     p.client.Name(),
		Queue:      p.queue,
		Exchange:   p.exchange,
		RoutingKey: m.RoutingKey,
		MessageID:  m.MessageID,
		Endpoint:   p.client.Endpoint(),
		Mode:       p.cfg.mode,
	}
	if ev.RoutingKey == "" {
		ev.RoutingKey = p.routingKey()
	}
	if ev.MessageID == "" && p.cfg.mode == Confirm {
		ev.MessageID = p.newID(seq) // the ID publish gives it
	}
	orig := m
	var handle any
	if len(p.hooks.message) == 1 {
		handle = p.hookPublish(p.hooks.message[0], ctx, ev, &m)
	} else {
		hs := make([]any, len(p.hooks.message))
		for i, h := range p.hooks.message {
			hs[i] = p.hookPublish(h, ctx, ev, &m)
		}
		handle = hs
	}
	if n, err := p.validate(&m); err == nil {
		size = n
	} else {
		m = orig
		if p.hooks.refusedLogged.CompareAndSwap(false, true) {
			p.log.Warn("producer: a message has no room for the headers of a hook (trace context); it is published without them (logged once)",
				"message_id", ev.MessageID, "err", err)
		}
		p.eachMessageHook(handle, func(h HookMessage, v any) {
			defer p.recoverHook("OnMessageHeadersRefused")
			h.OnMessageHeadersRefused(v, err)
		})
	}
	return m, handle, size
}

func (p *Producer) hookPublish(h HookMessage, ctx context.Context, ev MessagePublishEvent, m *Message) any {
	defer p.recoverHook("OnMessagePublish")
	return h.OnMessagePublish(ctx, ev, m)
}

// eachMessageHook calls f for every HookMessage with its handle.
func (p *Producer) eachMessageHook(handle any, f func(HookMessage, any)) {
	if len(p.hooks.message) == 1 {
		f(p.hooks.message[0], handle)
		return
	}
	hs, _ := handle.([]any)
	for i, h := range p.hooks.message {
		var v any
		if i < len(hs) {
			v = hs[i]
		}
		f(h, v)
	}
}

// traceSent runs OnMessageSent after a write of env on the connection cn.
func (p *Producer) traceSent(cn *lavinmq.Conn, env *envelope) {
	if len(p.hooks.message) != 0 {
		p.messageSent(cn, env.trace, env.resent)
	}
}

func (p *Producer) messageSent(cn *lavinmq.Conn, handle any, resent bool) {
	ev := MessageSentEvent{Resent: resent}
	if cn != nil {
		ev.Connection, ev.Endpoint = cn.Generation(), cn.Endpoint()
	}
	p.eachMessageHook(handle, func(h HookMessage, v any) {
		defer p.recoverHook("OnMessageSent")
		h.OnMessageSent(v, ev)
	})
}

// traceNacked runs OnMessageNacked after a nack of env.
func (p *Producer) traceNacked(env *envelope) {
	if len(p.hooks.message) != 0 {
		p.messageNacked(env.trace, int(env.attempts))
	}
}

func (p *Producer) messageNacked(handle any, attempt int) {
	p.eachMessageHook(handle, func(h HookMessage, v any) {
		defer p.recoverHook("OnMessageNacked")
		h.OnMessageNacked(v, attempt)
	})
}

// traceSettled runs OnMessageSettled for env: confirmed (r == 0) or dropped.
func (p *Producer) traceSettled(env *envelope, r DropReason) {
	if len(p.hooks.message) != 0 {
		p.messageSettled(env.trace, &env.msg, env.seq, r, nil)
	}
}

// traceRefused runs OnMessageSettled for a message Publish did not accept.
func (p *Producer) traceRefused(env *envelope, err error) {
	if len(p.hooks.message) != 0 {
		p.messageSettled(env.trace, &env.msg, env.seq, 0, err)
	}
}

func (p *Producer) messageSettled(handle any, m *Message, seq uint64, r DropReason, refused error) {
	ev := MessageSettledEvent{Accepted: refused == nil, Reason: r, Err: refused}
	if r != 0 {
		mm := *m
		if mm.MessageID == "" {
			mm.MessageID = p.newID(seq)
		}
		if mm.RoutingKey == "" {
			mm.RoutingKey = p.routingKey()
		}
		ev.Err = p.dropError(&mm, r)
	}
	p.eachMessageHook(handle, func(h HookMessage, v any) {
		defer p.recoverHook("OnMessageSettled")
		h.OnMessageSettled(v, ev)
	})
}
