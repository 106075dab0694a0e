package consumer

import (
	"fmt"
	"math"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Defaults of the redelivery options.
const (
	// DefaultMaxRedeliveries is the number of failures (handler panic or
	// NackRequeue) after which a delivery is discarded. 20 is the delivery
	// limit RabbitMQ 4 gives every quorum queue by default: high enough that a
	// transient fault (a database restarting) is ridden out with the growing
	// requeue delay (about 27 s of delays in all before the last try), low enough that
	// a poison message stops costing CPU within a minute. Messages are
	// dead-lettered, not lost, where the queue has a dead-letter exchange.
	DefaultMaxRedeliveries = 20
	// DefaultRequeueDelay is the delay before the first requeue of a failed
	// delivery; it doubles with each failure up to DefaultRequeueDelayMax.
	DefaultRequeueDelay    = 25 * time.Millisecond
	DefaultRequeueDelayMax = 2 * time.Second
)

// WithMaxRedeliveries discards (NackDiscard, so a dead-letter exchange gets
// it) a delivery that has failed n times: its handler panicked or returned
// NackRequeue (default DefaultMaxRedeliveries; 0 turns the limit off). The
// handler is not called for it more than n times. Failures are counted from
// the broker's x-delivery-count header where the queue has one (RabbitMQ
// quorum queues; LavinMQ queues with x-delivery-limit, which leave it out of
// the first delivery; it counts every return to the queue, a lost
// connection's too), and by the consumer itself, keyed by message ID or,
// without one, by a hash of the exchange, routing key and body (identical
// messages without an ID share a count), in a bounded record (10 000
// messages) that survives reconnects, not a restart of the process; the higher
// of the two counts. Each discard is counted in
// Stats().Discarded, reported to HookDiscarded and logged once.
func WithMaxRedeliveries(n int) Option {
	return optionFunc(func(c *cfg) { c.maxRedeliveries, c.maxRedeliveriesSet = n, true })
}

// WithRequeueDelay sets the delay before the nack of a failed delivery that is
// requeued: initial after its first failure, doubling per failure up to max
// (defaults 25ms and 2s), so that a failing message cannot spin. The handler
// goroutine waits it out (Close and Run's ctx cut it short).
func WithRequeueDelay(initial, max time.Duration) Option {
	return optionFunc(func(c *cfg) { c.requeueDelay, c.requeueDelayMax = initial, max })
}

// WithStreamOffset consumes a stream queue (x-queue-type: stream) from v:
// "first", "last", "next", an int64 offset or a time.Time. The consumer
// records the offset of each delivery its handler has finished
// (Delivery.StreamOffset) and, after a reconnect, a channel error or a broker
// cancel, subscribes again from the offset after the last one finished, so
// nothing is skipped and at most the prefetch count is handled twice. Lost
// before anything arrived, a consumer of "next" or "last" resubscribes from
// the time of its first subscribe less a second (the broker keeps seconds),
// not from "next" again, which would skip what was published meanwhile.
// StreamOffset returns that offset, for the application to store and pass
// back here on its next start (as stored+1). Streams need a prefetch and
// manual acks, which the consumer always uses. Ack and NackDiscard settle a
// delivery; NackRequeue (or a panic) does not, but the broker does not
// redeliver stream messages at once: the next subscribe (after a loss) starts
// from the lowest offset not settled, so later ones come again too. The broker
// does not requeue
// stream messages, so WithMaxRedeliveries does not apply and New refuses both.
func WithStreamOffset(v any) Option {
	return optionFunc(func(c *cfg) {
		if i, ok := v.(int); ok {
			v = int64(i)
		}
		c.streamOffset = v
		c.streamSet = true
	})
}

// WithPriority sets the consumer priority (x-priority): the broker sends to
// the consumers of the highest priority that have room in their prefetch.
func WithPriority(p int32) Option { return optionFunc(func(c *cfg) { c.priority = &p }) }

// WithExclusive consumes exclusively: the broker refuses other consumers of the
// queue (403 ACCESS_REFUSED) while this one is subscribed, and this one's
// subscribe while another consumes (retried with backoff; see SubscribeErr).
func WithExclusive() Option { return optionFunc(func(c *cfg) { c.exclusive = true }) }

// WithConsumeArgs adds arguments to basic.consume (for a plugin or a broker
// feature without an option here). They are validated in New; they cannot
// repeat x-priority or x-stream-offset when WithPriority or WithStreamOffset is used.
func WithConsumeArgs(args amqp.Table) Option {
	return optionFunc(func(c *cfg) { c.consumeArgs = args })
}

func (c *cfg) validateExtra() error {
	switch {
	case c.maxRedeliveries < 0:
		return fmt.Errorf("%w: max redeliveries must be >= 0 (0: no limit), got %d", ErrInvalidConfig, c.maxRedeliveries)
	case c.requeueDelay < 0:
		return fmt.Errorf("%w: requeue delay must be >= 0, got %v", ErrInvalidConfig, c.requeueDelay)
	case c.requeueDelayMax < c.requeueDelay:
		return fmt.Errorf("%w: requeue max delay %v is below the initial delay %v", ErrInvalidConfig, c.requeueDelayMax, c.requeueDelay)
	}
	if err := c.consumeArgs.Validate(); err != nil {
		return fmt.Errorf("%w: consume arguments: %w", ErrInvalidConfig, err)
	}
	if _, ok := c.consumeArgs["x-priority"]; ok && c.priority != nil {
		return fmt.Errorf("%w: x-priority given both by WithPriority and WithConsumeArgs", ErrInvalidConfig)
	}
	if !c.streamSet {
		return nil
	}
	switch v := c.streamOffset.(type) {
	case string:
		if v != "first" && v != "last" && v != "next" {
			return fmt.Errorf("%w: stream offset %q: want \"first\", \"last\", \"next\", an int64 or a time.Time", ErrInvalidConfig, v)
		}
	case int64:
		if v < 0 {
			return fmt.Errorf("%w: stream offset must be >= 0, got %d", ErrInvalidConfig, v)
		}
	case time.Time:
		if v.IsZero() || v.Unix() < 0 {
			return fmt.Errorf("%w: stream offset time %v is before 1970", ErrInvalidConfig, v)
		}
	default:
		return fmt.Errorf("%w: stream offset of type %T: want \"first\", \"last\", \"next\", an int64 or a time.Time", ErrInvalidConfig, v)
	}
	if _, ok := c.consumeArgs["x-stream-offset"]; ok {
		return fmt.Errorf("%w: x-stream-offset given both by WithStreamOffset and WithConsumeArgs", ErrInvalidConfig)
	}
	if c.maxRedeliveriesSet && c.maxRedeliveries > 0 {
		return fmt.Errorf("%w: WithMaxRedeliveries with WithStreamOffset: a stream does not requeue", ErrInvalidConfig)
	}
	return nil
}

// consumeTable returns the arguments of basic.consume; from is the stream
// offset to start at (the configured one, or the resume point).
func (c *cfg) consumeTable(from any) amqp.Table {
	if c.priority == nil && from == nil && len(c.consumeArgs) == 0 {
		return nil
	}
	t := make(amqp.Table, len(c.consumeArgs)+2)
	for k, v := range c.consumeArgs {
		t[k] = v
	}
	if c.priority != nil {
		t["x-priority"] = *c.priority
	}
	if from != nil {
		t["x-stream-offset"] = from
	}
	return t
}

// requeueDelayFor returns the delay before the requeue after the n-th failure.
func (c *cfg) requeueDelayFor(n int) time.Duration {
	d := c.requeueDelay
	for i := 1; i < n && d < c.requeueDelayMax; i++ {
		if d > math.MaxInt64/2 {
			return c.requeueDelayMax
		}
		d *= 2
	}
	return min(d, c.requeueDelayMax)
}
