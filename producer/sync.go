package producer

import (
	"context"
	"fmt"
)

// PublishSync publishes m like Publish and waits until this one message has
// settled. It returns nil once the broker confirmed it (in FireAndForget:
// once it was written to the socket), a *DropError when it was dropped (it
// wraps ErrDropped and the DropReason, so errors.Is(err, producer.Unroutable)
// holds for a message no queue took), Publish's error when it was not
// accepted, or, when ctx ends first, an error wrapping ctx's error. In that
// last case the message stays accepted: it is still confirmed or reported
// through OnDrop later, and counted in Stats meanwhile.
//
// PublishSync is a thin wrapper on the asynchronous path: messages published
// with PublishSync and Publish share the buffer, the order and the
// guarantees. It suits a caller that must know one message's outcome (an
// HTTP handler that answers only once the order is stored); a loop of
// PublishSync calls waits a round trip per message, far slower than Publish
// followed by Flush. Unlike Publish it allocates (a few dozen bytes per call).
func (p *Producer) PublishSync(ctx context.Context, m Message) error {
	if ctx == nil {
		return fmt.Errorf("%w: nil context", ErrInvalidArgument)
	}
	w := &waiter{done: make(chan struct{})}
	if err := p.enqueue(ctx, m, w); err != nil {
		return err
	}
	select {
	case <-w.done:
		return w.err
	case <-ctx.Done():
	}
	select { // settled at the same instant: the outcome beats ctx
	case <-w.done:
		return w.err
	default:
	}
	return p.pendingErr("producer: publish sync: accepted, not settled yet (it will be confirmed or reported through OnDrop)", ctx.Err())
}

// waiter is PublishSync's: settle stores the outcome and closes done, once
// per message (every accepted message settles exactly once).
type waiter struct {
	done chan struct{}
	err  error
}

func (w *waiter) settle(err error) {
	w.err = err
	close(w.done)
}

// DropError is the error PublishSync returns for a dropped message. It wraps
// ErrDropped, its Reason (a DropReason is an error for errors.Is) and, when
// known, the problem behind the drop (for example the broker's
// *amqp091.Error that closed the channel on a message with reason Invalid).
type DropError struct {
	Reason     DropReason
	MessageID  string // the message's ID (generated when it had none)
	RoutingKey string // the key it was (or would have been) published with
	Cause      error  // the problem the producer met last, for Nacked, TooLarge and Invalid; may be nil
}

// Error says which message was dropped, why, and with which routing key.
func (e *DropError) Error() string {
	s := fmt.Sprintf("producer: message %s dropped: %s (routing key %q)", e.MessageID, e.Reason, e.RoutingKey)
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

// Unwrap returns ErrDropped, the Reason and the Cause (when not nil).
func (e *DropError) Unwrap() []error {
	if e.Cause != nil {
		return []error{ErrDropped, e.Reason, e.Cause}
	}
	return []error{ErrDropped, e.Reason}
}

// Error returns the reason's name, so that a DropReason can be matched with
// errors.Is in the error of PublishSync.
func (r DropReason) Error() string { return r.String() }

func (p *Producer) dropError(m *Message, r DropReason) *DropError {
	e := &DropError{Reason: r, MessageID: m.MessageID, RoutingKey: m.RoutingKey}
	switch r {
	case Nacked, TooLarge, Invalid:
		if c := p.cause.Load(); c != nil {
			e.Cause = c.err
		}
	}
	return e
}

// pendingErr wraps err (a wait's ctx error) with what holds messages up:
// the last problem the publisher met (wrapped too, so an *amqp091.Error stays
// reachable), a blocked connection, or no connection.
func (p *Producer) pendingErr(what string, err error) error {
	if c := p.cause.Load(); c != nil {
		return fmt.Errorf("%s: %w (last cause: %w)", what, err, c.err)
	}
	if blocked, _ := p.client.Blocked(); blocked {
		return fmt.Errorf("%s: %w (the broker blocks the connection)", what, err)
	}
	if !p.client.Connected() {
		return fmt.Errorf("%s: %w (not connected to the broker)", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
