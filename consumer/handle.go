package consumer

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"
)

// handle runs on a worker goroutine: it calls the handler for one delivery
// and applies the Action on the channel the delivery came on. hctx is the
// handlers' ctx (Run's ctx, also cancelled when a Close's ctx ends); the
// handler's own ctx is also cancelled when the delivery's channel is gone.
func (k *Consumer) handle(hctx context.Context, h Handler, j job) {
	if !j.s.live() {
		// Its channel is gone: the broker has requeued it and will deliver it
		// again, so do not run the handler on a copy that cannot be acked.
		k.stale(j.d.DeliveryTag, nil)
		k.streamDone(j, false)
		return
	}
	limit := k.cfg.maxRedeliveries
	if k.cfg.streamSet {
		limit = 0 // a stream does not requeue
	}
	var key string // computed when needed (failureKeyOf)
	var prior int
	if limit > 0 {
		if prior = k.priorFailures(&j.d, &key); prior >= limit {
			// Failed limit times already (before a reconnect, or on another
			// consumer by the broker's count): discard without calling h.
			k.discard(j, failureKeyOf(&j.d, &key), prior)
			return
		}
	}
	k.stats.delivered.Add(1)
	k.stats.inFlight.Add(1)
	defer k.stats.inFlight.Add(-1)
	k.eachHook(func(hk any) {
		if hk, ok := hk.(HookDelivered); ok {
			hk.OnDelivered(k.queue)
		}
	})
	ctx, cancel := context.WithCancel(j.s.handlerParent(hctx))
	d := newDelivery(k.queue, &j.d)
	tctx, end := k.handleStart(ctx, j.s, &d)
	start := time.Now()
	a, rec := k.call(tctx, h, d)
	took := time.Since(start)
	if limit > 0 {
		if a == Ack || a == NackDiscard {
			if !k.failed.empty() {
				k.failed.forget(failureKeyOf(&j.d, &key))
			}
		} else if n := max(k.failed.add(failureKeyOf(&j.d, &key)), prior+1); n >= limit {
			k.discard(j, key, n)
			k.handled(NackDiscard, took)
			k.handleEnd(end, NackDiscard, rec)
			k.streamDone(j, true)
			cancel()
			return
		} else if !k.sleep(ctx, k.cfg.requeueDelayFor(n)) {
			k.log.Debug("consumer: requeue delay cut short", "delivery_tag", j.d.DeliveryTag, "failures", n)
		}
	}
	cancel()
	k.apply(j, a)
	k.handled(a, took)
	k.handleEnd(end, a, rec)
	// On a stream, NackRequeue (a handler that gave up, say on its ctx) is
	// not settled: the next subscribe starts from it again.
	k.streamDone(j, a == Ack || a == NackDiscard)
}

// handled calls HookHandled: for every delivery the handler ran on, with the
// Action it chose, whether or not the Action reached the broker.
func (k *Consumer) handled(a Action, took time.Duration) {
	k.eachHook(func(hk any) {
		if hk, ok := hk.(HookHandled); ok {
			hk.OnHandled(k.queue, a, took)
		}
	})
}

// sleep waits d or until ctx ends (false).
func (k *Consumer) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// discard rejects j without requeue after failures failures: counted, logged
// once and reported to HookDiscarded with the reason "max_redeliveries".
func (k *Consumer) discard(j job, key string, failures int) {
	k.failed.forget(key)
	if !k.send(j, NackDiscard) {
		return
	}
	k.stats.discarded.Add(1)
	k.log.Warn("consumer: delivery discarded after too many failures", "reason", ReasonMaxRedeliveries,
		"failures", failures, "limit", k.cfg.maxRedeliveries, "message_id", j.d.MessageId, "delivery_tag", j.d.DeliveryTag)
	k.eachHook(func(hk any) {
		if hk, ok := hk.(HookDiscarded); ok {
			hk.OnDiscarded(k.queue, ReasonMaxRedeliveries)
		}
	})
}

// ReasonMaxRedeliveries is the reason given to HookDiscarded (and logged) for
// a delivery discarded by WithMaxRedeliveries.
const ReasonMaxRedeliveries = "max_redeliveries"

// call runs the handler and turns a panic into the configured nack; r is
// the value it panicked with.
func (k *Consumer) call(ctx context.Context, h Handler, d Delivery) (a Action, r any) {
	defer func() {
		r = recover()
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
	return h(ctx, d), nil
}

// apply sends the Action for j on j's own channel and counts it. With ack
// coalescing (WithAckBatch) an Ack is recorded on j's session and counted
// when the frame that covers it is written (or found stale).
func (k *Consumer) apply(j job, a Action) {
	if a == Ack && j.s.acks != nil {
		j.s.acks.ack(j.d.DeliveryTag)
		return
	}
	if !k.send(j, a) {
		return
	}
	switch a {
	case Ack:
		k.stats.acked.Add(1)
		k.stats.ackFrames.Add(1)
	case NackDiscard:
		k.stats.nackedDiscard.Add(1)
	default:
		k.stats.nackedRequeue.Add(1)
	}
}

// send writes the Action for j on j's own channel if that channel is still
// live, and reports whether it was written there. Otherwise (or if the write
// fails, or the channel was found gone right after it) the Action is counted
// as stale: the broker requeued the message when the channel closed. An
// unknown Action is sent as NackRequeue. A nack on a session that coalesces
// acks goes after the acks settled before it (see acker.nack).
func (k *Consumer) send(j job, a Action) bool {
	if !j.s.live() {
		k.stale(j.d.DeliveryTag, nil)
		return false
	}
	var err error
	switch {
	case a == Ack:
		err = j.s.ch.Ack(j.d.DeliveryTag, false)
	case j.s.acks != nil:
		err = j.s.acks.nack(j.d.DeliveryTag, a != NackDiscard)
	case a == NackDiscard:
		err = j.s.ch.Nack(j.d.DeliveryTag, false, false)
	default:
		err = j.s.ch.Nack(j.d.DeliveryTag, false, true)
	}
	if err == nil && j.s.ch.IsClosed() {
		// amqp091 wrote the frame to a channel that its reader had already
		// closed: the broker never applies it.
		err = errWrittenToClosed
	}
	if err != nil {
		k.stale(j.d.DeliveryTag, err)
		return false
	}
	return true
}

// handBack returns a delivery that no handler started to the queue at once
// (nack with requeue on its live channel) when the consumer stops, so another
// consumer gets it without waiting for the slowest handler.
func (k *Consumer) handBack(j job) {
	k.streamDone(j, false)
	if !j.s.live() {
		return // the channel's close requeued it
	}
	var err error
	if j.s.acks != nil {
		err = j.s.acks.nack(j.d.DeliveryTag, true) // after the acks settled before it
	} else {
		err = j.s.ch.Nack(j.d.DeliveryTag, false, true)
	}
	if err != nil {
		k.log.Debug("consumer: hand back", "delivery_tag", j.d.DeliveryTag, "error", err)
		return
	}
	k.stats.handedBack.Add(1)
}

func (k *Consumer) stale(tag uint64, err error) { k.staleN(tag, 1, err) }

// staleN counts n Actions (the last of them for tag) that could not be
// applied: once each in StaleAcks and HookStaleAck, one log line.
func (k *Consumer) staleN(tag uint64, n int, err error) {
	k.stats.staleAcks.Add(uint64(n))
	k.log.Debug("consumer: stale delivery, the broker will redeliver it", "delivery_tag", tag, "deliveries", n, "error", err)
	for range n {
		k.eachHook(func(hk any) {
			if hk, ok := hk.(HookStaleAck); ok {
				hk.OnStaleAck(k.queue)
			}
		})
	}
}
