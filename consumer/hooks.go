package consumer

import "time"

// Hooks are values of any type passed to WithHooks; the consumer calls the
// methods of the interfaces below that a value implements, so adding a hook
// interface never breaks an existing hook. Hooks run on the consumer's own
// goroutines (the handler goroutines and the subscription loop), never on
// amqp091-go's I/O goroutine. They must return quickly: count, log, set a gauge.

// HookDelivered is called when a delivery is handed to the handler.
type HookDelivered interface{ OnDelivered(queue string) }

// HookHandled is called after the handler returned (or panicked) with the
// Action applied and the time the handler took. It is called for stale
// deliveries too; HookStaleAck says which ones did not reach the broker.
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

func (k *Consumer) eachHook(f func(any)) {
	for _, h := range k.cfg.hooks {
		f(h)
	}
}
