package consumer

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"
)

// Hooks are values of any type passed to WithHooks; the consumer calls the
// methods of the interfaces below that a value implements, so adding a hook
// interface never breaks an existing hook. Hooks run on the consumer's own
// goroutines (the handler goroutines and the subscription loop), never on
// amqp091-go's I/O goroutine. They must return quickly: count, log, set a gauge.
// A hook that panics is recovered and logged at error level.

// HookDelivered is called when a delivery is handed to the handler.
type HookDelivered interface{ OnDelivered(queue string) }

// HookHandled is called after the handler returned (or panicked), for every
// delivery the handler ran on, with the Action it chose (NackDiscard when
// WithMaxRedeliveries discarded it) and the time the handler took. It is
// called whether or not the Action reached the broker: HookStaleAck says which
// ones did not. Deliveries the handler never ran on (stale before it started,
// handed back at shutdown, discarded before the call) do not reach it.
type HookHandled interface {
	OnHandled(queue string, a Action, d time.Duration)
}

// HookPanic is called when the handler panicked, with the recovered value.
type HookPanic interface {
	OnPanic(queue string, recovered any)
}

// HookStaleAck is called when an Action could not be applied because the
// channel the delivery came on is gone; the broker redelivers the message.
type HookStaleAck interface{ OnStaleAck(queue string) }

// HookResubscribed is called each time the consumer has subscribed again
// after losing its subscription (connection loss, channel error, basic.cancel).
type HookResubscribed interface{ OnResubscribed(queue string) }

// HookDiscarded is called when the consumer discards a delivery by itself
// (NackDiscard), with the reason: ReasonMaxRedeliveries.
type HookDiscarded interface{ OnDiscarded(queue, reason string) }

// HookSubscribeFailed is called by Run's goroutine each time a subscribe
// attempt fails (no such queue, access refused, an exclusive consumer...),
// with the attempt number since the last success; Run retries with backoff.
// SubscribeErr returns the same error.
type HookSubscribeFailed interface {
	OnSubscribeFailed(queue string, err error, attempt int)
}

// HookHandle wraps every handler call: the tracing package implements it to
// run each handler inside a span.
type HookHandle interface {
	// OnHandle is called on the handler's goroutine right before the handler
	// runs, with the ctx the handler would get. The handler gets the ctx
	// OnHandle returns, which must derive from ctx (carry a span in it, say).
	// end, when not nil, is called once on the same goroutine, after the
	// handler returned or panicked and its Action was applied (or found stale:
	// see HookStaleAck), with the Action (NackDiscard when WithMaxRedeliveries
	// discarded the delivery) and the value the handler panicked with (nil
	// when it returned). It is not called for deliveries the handler never
	// ran on (see HookHandled).
	OnHandle(ctx context.Context, ev HandleEvent) (hctx context.Context, end func(a Action, panicked any))
}

// HandleEvent describes the delivery a handler is about to get.
type HandleEvent struct {
	Client   string   // the client's Name
	Endpoint string   // host:port of the connection the delivery came on; never credentials
	Delivery Delivery // the delivery, as the handler gets it
}

// eachHook calls f with every hook value. A hook that panics is recovered
// and logged; the goroutine that called it (a handler worker or Run's loop)
// goes on.
func (k *Consumer) eachHook(f func(any)) {
	for _, h := range k.cfg.hooks {
		k.callHook(f, h)
	}
}

func (k *Consumer) callHook(f func(any), h any) {
	defer func() {
		if v := recover(); v != nil {
			k.log.Error("consumer: hook panicked; recovered", "hook", fmt.Sprintf("%T", h), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		}
	}()
	f(h)
}

// isHook reports whether h implements at least one hook interface: a value
// that implements none (a misspelt method) would silently do nothing.
func isHook(h any) bool {
	switch h.(type) {
	case HookDelivered, HookHandled, HookPanic, HookStaleAck, HookResubscribed, HookDiscarded, HookSubscribeFailed, HookHandle:
		return true
	}
	return false
}
