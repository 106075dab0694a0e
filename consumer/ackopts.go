package consumer

import (
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Defaults of WithAckBatch.
const (
	// DefaultAckBatch is the number of settled deliveries acknowledged by
	// one basic.ack (multiple=true), capped at half the prefetch. 25 is a
	// quarter of the default prefetch: one ack frame instead of 25 roughly
	// doubles what a broker and this client can consume per second (the
	// broker's per-frame work is the cost), while the broker still always has
	// room to send ahead. The cost is in a crash of the process: up to this
	// many deliveries already handled but not yet acknowledged are delivered
	// again (at-least-once consumers de-duplicate anyway; a handler in
	// flight is redelivered in any case).
	DefaultAckBatch = 25
	// DefaultAckDelay bounds how long a settled delivery waits for its ack:
	// when fewer than the batch are settled (a slow or idle queue) they are
	// acknowledged this long after the first of them. 10 ms keeps the
	// redelivery window of a crash and the time a message shows as
	// unacknowledged short, at no more than 100 extra ack frames a second.
	DefaultAckDelay = 10 * time.Millisecond
	// maxAckDelay is the longest delay WithAckBatch takes: beyond it a
	// settled message would linger unacknowledged for no gain.
	maxAckDelay = time.Minute
)

// WithAckBatch coalesces acknowledgements: the Acks of consecutive
// deliveries (by delivery tag) are sent as one basic.ack with multiple=true
// once n of them are settled, and at the latest maxDelay after the first of
// them was settled (defaults DefaultAckBatch and DefaultAckDelay, like
// Spring AMQP's messagesPerAck and ackTimeout). n is capped at half the
// prefetch (WithPrefetch), so the broker never waits for an ack the consumer
// is holding back; n = 1 (or a prefetch below 4) acknowledges each delivery
// on its own, at once, as amqp091-go's Ack(false) does.
//
// With concurrency above 1 handlers finish out of order: only the contiguous
// run of settled deliveries goes in one multiple ack; Acks behind a delivery
// still in its handler wait for it (or for maxDelay), and go one by one once
// 2n of them wait (at most the prefetch less one), so a handler that does not
// return never stalls the others. NackRequeue and NackDiscard are sent at once, each
// on its own, after the Acks settled before them, so that the broker sees
// the outcomes in delivery order. Close and the end of Run's ctx send every
// Ack settled before the channel closes. The Acks of a channel that is gone
// are never sent on another one: they count in Stats().StaleAcks and the
// broker delivers those messages again (more duplicates after a lost
// connection: up to n, or what settled within maxDelay). Stats().Acked and
// the hooks count per delivery, as without coalescing; Stats().AckFrames
// counts the frames.
//
// New refuses n < 1, and for n > 1 a maxDelay not in (0, 1 minute].
func WithAckBatch(n int, maxDelay time.Duration) Option {
	return optionFunc(func(c *cfg) { c.ackBatchN, c.ackDelay = n, maxDelay })
}

func (c *cfg) validateAcks() error {
	switch {
	case c.ackBatchN < 1:
		return fmt.Errorf("%w: ack batch must be >= 1 (1: ack each delivery at once), got %d", ErrInvalidConfig, c.ackBatchN)
	case c.ackBatchN > 1 && (c.ackDelay <= 0 || c.ackDelay > maxAckDelay):
		return fmt.Errorf("%w: ack batch max delay must be in (0, %v], got %v", ErrInvalidConfig, maxAckDelay, c.ackDelay)
	}
	return nil
}

// ackBatch is the effective batch: WithAckBatch's n capped at half the prefetch.
func (c *cfg) ackBatch() int { return max(1, min(c.ackBatchN, c.prefetch/2)) }

// ackSpill is how many acks may wait before all are written, one by one
// behind a pending delivery: twice the batch, below the prefetch (so the
// broker always has room to send), above the batch.
func ackSpill(batch, prefetch int) int { return max(batch+1, min(2*batch, prefetch-1)) }

// chanAcks writes acks and nacks on a channel and treats a frame written to a
// channel whose reader had already closed it as failed: the broker never
// applies it.
type chanAcks struct{ ch *amqp.Channel }

func (c chanAcks) Ack(tag uint64, multiple bool) error {
	return c.check(c.ch.Ack(tag, multiple))
}

func (c chanAcks) Nack(tag uint64, multiple, requeue bool) error {
	return c.check(c.ch.Nack(tag, multiple, requeue))
}

func (c chanAcks) check(err error) error {
	if err == nil && c.ch.IsClosed() {
		return errWrittenToClosed
	}
	return err
}

// newAcker returns the ack coalescer of session s, counting into k's stats.
func (k *Consumer) newAcker(s *session, batch int) *acker {
	return &acker{
		ch:   chanAcks{s.ch},
		live: s.live,
		acked: func(n int) {
			k.stats.acked.Add(uint64(n))
			k.stats.ackFrames.Add(1)
		},
		stale: k.staleN,
		batch: batch,
		spill: ackSpill(batch, k.cfg.prefetch),
		delay: k.cfg.ackDelay,
	}
}
