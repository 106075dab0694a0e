// Package consumer consumes a queue through a lavinmq.Client and keeps
// consuming while connections come and go.
//
//	c, err := lavinmq.New("amqp://guest:guest@127.0.0.1:5672/")
//	if err != nil {
//		return err
//	}
//	defer c.Close()
//	k, err := consumer.New(c, "orders",
//		consumer.WithPrefetch(50), consumer.WithConcurrency(8), consumer.WithDeclare(nil))
//	if err != nil {
//		return err // bad option: New never talks to the broker
//	}
//	err = k.Run(ctx, func(ctx context.Context, d consumer.Delivery) consumer.Action {
//		if err := process(ctx, d.Body); err != nil {
//			return consumer.NackRequeue
//		}
//		return consumer.Ack
//	})
//
// Run subscribes (channel, basic.qos, basic.consume with manual acks) and
// subscribes again by itself after a lost connection, a channel error or a
// basic.cancel from the broker (for example a deleted queue, which
// WithDeclare declares again). A queue that does not exist is waited for,
// with backoff, and a warning is logged. QoS is set again on every channel.
//
// The handler returns an Action and the consumer applies it: there is no Ack
// method on a Delivery to forget or to call twice. Each delivery remembers the
// channel it came on, and its Action is sent on that channel only while it is
// live; once it is gone the Action is dropped and counted as a stale ack (the
// broker has requeued the message and delivers it again, with Redelivered
// set). An Action is never sent on a later channel, where its delivery tag
// would mean another message or close the channel with a 406. Delivery is at
// least once: handlers should be idempotent.
//
// Acks are coalesced (WithAckBatch; by default DefaultAckBatch of them, or
// what settled within DefaultAckDelay, whichever comes first): one basic.ack
// with multiple=true covers the contiguous run of settled deliveries, which
// saves the broker most of its per-ack work. Nacks go at once, after the
// acks before them; Close and the end of Run's ctx write every settled ack
// before the channel closes.
//
// A panicking handler is recovered, logged with its stack and its delivery
// nacked with requeue (or discarded, see WithRequeueOnPanic). Handlers run on
// min(WithConcurrency, WithPrefetch) goroutines, so no more than prefetch
// handlers ever run at once, not even right after a reconnect.
//
// A delivery that fails again and again (a poison message) is requeued after
// a growing delay and discarded after WithMaxRedeliveries failures (default
// 20), so that a dead-letter exchange gets it. A stream queue is consumed with
// WithStreamOffset, and resumed after every loss from the offset after the
// last one settled (StreamOffset).
//
// Run returns when its ctx ends or Close is called: it hands the prefetched
// deliveries no handler started back to the queue at once, and returns after
// the handlers in flight have finished and their Actions have been applied
// (when the ctx of Close ends first, the handlers' ctx is cancelled); every
// goroutine the consumer starts has ended by then. Close is the clean stop
// (Run returns nil); a cancelled ctx is a normal end too (Run returns
// ctx.Err()). A handler's ctx is also cancelled when its delivery's channel is
// gone. SubscribeErr says why a consumer does not consume. Stats and the hooks
// (WithHooks) report deliveries, Actions, discards, panics, stale acks,
// subscribe failures and resubscribes.
package consumer
