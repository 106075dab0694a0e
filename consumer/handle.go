package consumer

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"
)

// handle runs on a worker goroutine: it calls the handler for one delivery
// and applies the Action on the channel the delivery came on.
func (k *Consumer) handle(ctx context.Context, h Handler, j job) {
	if !j.s.live() {
		// Its channel is gone: the broker has requeued it and will deliver it
		// again, so do not run the handler on a copy that cannot be acked.
		k.stale(j.d.DeliveryTag, nil)
		return
	}
	k.stats.delivered.Add(1)
	k.stats.inFlight.Add(1)
	defer k.stats.inFlight.Add(-1)
	k.eachHook(func(hk any) {
		if hk, ok := hk.(HookDelivered); ok {
			hk.OnDelivered(k.queue)
		}
	})
	start := time.Now()
	a := k.call(ctx, h, newDelivery(k.queue, &j.d))
	took := time.Since(start)
	k.apply(j, a)
	k.eachHook(func(hk any) {
		if hk, ok := hk.(HookHandled); ok {
			hk.OnHandled(k.queue, a, took)
		}
	})
}

// call runs the handler and turns a panic into the configured nack.
func (k *Consumer) call(ctx context.Context, h Handler, d Delivery) (a Action) {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		k.stats.panics.Add(1)
		a = NackRequeue
		if !k.cfg.requeueOnPanic {
			a = NackDiscard
		}
		k.log.Error("consumer: handler panicked", "panic", fmt.Sprint(r), "delivery_tag", d.DeliveryTag,
			"redelivered", d.Redelivered, "action", a.String(), "stack", string(debug.Stack()))
		k.eachHook(func(hk any) {
			if hk, ok := hk.(HookPanic); ok {
				hk.OnPanic(k.queue, r)
			}
		})
	}()
	return h(ctx, d)
}

// apply sends the Action for j on j's own channel if that channel is still
// live. Otherwise (or if the send fails) the Action is dropped and counted as
// stale: the broker requeued the message when the channel closed. An unknown
// Action is applied as NackRequeue.
func (k *Consumer) apply(j job, a Action) {
	if !j.s.live() {
		k.stale(j.d.DeliveryTag, nil)
		return
	}
	var err error
	switch a {
	case Ack:
		err = j.s.ch.Ack(j.d.DeliveryTag, false)
	case NackDiscard:
		err = j.s.ch.Nack(j.d.DeliveryTag, false, false)
	default:
		err = j.s.ch.Nack(j.d.DeliveryTag, false, true)
	}
	if err != nil {
		k.stale(j.d.DeliveryTag, err)
		return
	}
	switch a {
	case Ack:
		k.stats.acked.Add(1)
	case NackDiscard:
		k.stats.nackedDiscard.Add(1)
	default:
		k.stats.nackedRequeue.Add(1)
	}
}

func (k *Consumer) stale(tag uint64, err error) {
	k.stats.staleAcks.Add(1)
	k.log.Debug("consumer: stale delivery, the broker will redeliver it", "delivery_tag", tag, "error", err)
	k.eachHook(func(hk any) {
		if hk, ok := hk.(HookStaleAck); ok {
			hk.OnStaleAck(k.queue)
		}
	})
}
