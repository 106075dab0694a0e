package consumer

import (
	"errors"
	"sync"
	"time"
)

// acknowledger writes acks and nacks on one channel: *amqp.Channel's methods,
// behind chanAcks in a session (a fake in the tests of the tracker).
type acknowledger interface {
	Ack(tag uint64, multiple bool) error
	Nack(tag uint64, multiple, requeue bool) error
}

// errAckChannelGone: the delivery's channel was gone before its ack was written.
var errAckChannelGone = errors.New("consumer: channel gone before the ack was written")

// acker coalesces the acks of one session's channel (WithAckBatch): Acks are
// recorded and written as one basic.ack with multiple=true for the contiguous
// run of settled deliveries, when batch of them are waiting (flushCount) and
// at the latest delay after the first one was recorded (the timer), and when
// the session ends with its channel still open (close). A nack is written at
// once, after the acks before it (flushBefore). Nothing of an acker is ever
// written on another channel: a session has its own, and once closed (or once
// its channel is gone) what it still holds is reported stale.
//
// Goroutines: the pump adds tags, handler goroutines settle them, the timer's
// goroutine flushes, Run's goroutine closes. mu guards everything and is held
// while a frame is written, so frames leave in the order they were decided
// (a multiple ack below a nack's tag before the nack; never a multiple ack
// below one already written, which the broker would refuse with 406).
type acker struct {
	ch    acknowledger
	live  func() bool                        // whether the channel can still take frames
	acked func(n int)                        // n acks written (one frame)
	stale func(tag uint64, n int, err error) // n acks (the last tag) that cannot be written
	batch int                                // flush by count once the leading run holds this many acks
	spill int                                // at this many acks waiting, write them all (> batch, < prefetch)
	delay time.Duration                      // flush at the latest this long after an ack is recorded

	mu      sync.Mutex
	ring    tagRing
	timer   *time.Timer // created on first use, then Reset; fires onTimer
	armed   bool        // the timer is running
	closed  bool        // close was called: everything is written or reported stale
	scratch []uint64    // takeRest's buffer, reused
}

// track records a tag the pump took from the channel, as pending.
func (a *acker) track(tag uint64) {
	a.mu.Lock()
	if !a.closed {
		a.ring.add(tag)
	}
	a.mu.Unlock()
}

// ack records that tag is settled with Ack and writes what is due. An ack
// that can no longer be written is reported stale at once.
func (a *acker) ack(tag uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed || !a.live() {
		a.stale(tag, 1, errAckChannelGone)
		return
	}
	if !a.ring.settle(tag, tagAck) {
		// Not tracked (taken outside the pump): on its own, after the acks before it.
		a.flushBefore(tag)
		a.write(tag, false, 1)
		return
	}
	if a.ring.acks >= a.batch {
		a.flushCount()
	}
	if a.ring.acks > 0 && !a.armed {
		a.armed = true
		if a.timer == nil {
			a.timer = time.AfterFunc(a.delay, a.onTimer)
		} else {
			a.timer.Reset(a.delay)
		}
	}
}

// nack writes the acks before tag, then a nack of tag alone. It returns the
// write's error, or errAckChannelGone when the channel is gone or the acker
// closed (nothing written).
func (a *acker) nack(tag uint64, requeue bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed || !a.live() {
		return errAckChannelGone
	}
	a.flushBefore(tag)
	err := a.ch.Nack(tag, false, requeue)
	a.ring.settle(tag, tagDone)
	return err
}

// close writes every ack still waiting while the channel is live, or reports
// them stale when it is gone; later calls of ack report stale at once.
func (a *acker) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	a.closed = true
	if a.timer != nil {
		a.timer.Stop()
	}
	if a.live() {
		a.flushAll()
		return
	}
	if last, n := a.ring.takePrefix(^uint64(0)); n > 0 {
		a.stale(last, n, errAckChannelGone)
	}
	a.scratch = a.ring.takeRest(a.scratch[:0])
	for _, t := range a.scratch {
		a.stale(t, 1, errAckChannelGone)
	}
}

func (a *acker) onTimer() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.armed = false
	if a.closed || !a.live() {
		return // close reports what is left
	}
	a.flushAll()
}

// flushBefore writes, as one frame, the acks of the leading settled run below
// limit.
func (a *acker) flushBefore(limit uint64) {
	if last, n := a.ring.takePrefix(limit); n > 0 {
		a.write(last, n > 1, n)
	}
}

// flushCount runs when batch acks wait. It writes the leading settled run
// once it holds batch acks: behind a pending delivery (its handler is still
// running, usually about to return) it waits, so that one frame still covers
// a whole batch. When spill acks wait it writes them all (the run, the rest
// one by one), so that a handler that does not return never holds the
// prefetch window closed.
func (a *acker) flushCount() {
	if a.ring.acks >= a.spill {
		a.flushAll()
		return
	}
	if a.ring.prefixAcks(a.batch) >= a.batch {
		a.flushBefore(^uint64(0))
	}
}

// flushAll writes every ack waiting: the leading run as one frame, the rest
// one by one.
func (a *acker) flushAll() {
	a.flushBefore(^uint64(0))
	a.writeRest()
}

func (a *acker) writeRest() {
	a.scratch = a.ring.takeRest(a.scratch[:0])
	for _, t := range a.scratch {
		a.write(t, false, 1)
	}
}

// write sends one ack frame covering n deliveries and reports it.
func (a *acker) write(tag uint64, multiple bool, n int) {
	if err := a.ch.Ack(tag, multiple); err != nil {
		a.stale(tag, n, err)
		return
	}
	a.acked(n)
}
