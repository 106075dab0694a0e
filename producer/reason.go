package producer

import "fmt"

// Mode selects the delivery guarantee.
type Mode uint8

const (
	// Confirm publishes in confirm mode: at-least-once, a message is done when the broker acks it.
	Confirm Mode = iota
	// FireAndForget writes without confirms: at-most-once, a message is done when written to the socket.
	FireAndForget
)

func (m Mode) String() string {
	switch m {
	case Confirm:
		return "confirm"
	case FireAndForget:
		return "fire_and_forget"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// DropReason says why an accepted message was given up.
type DropReason uint8

const (
	// Evicted: buffer.DropOldest pushed it out of a full buffer.
	Evicted DropReason = iota + 1
	// Nacked: the broker nacked it on more attempts than the retry budget.
	Nacked
	// Unroutable: published with mandatory and returned by the broker (no queue took it).
	Unroutable
	// TooLarge: the broker refused it as over its max message size.
	TooLarge
	// Shutdown: still buffered or unconfirmed when Close gave up (or the client was closed).
	Shutdown
	// Invalid: a poison message. Either amqp091-go could not encode it (a
	// check Publish missed), or it was the first unconfirmed message each
	// time its channel or connection was closed by the broker for a reason
	// that points at a message (406 PRECONDITION_FAILED, a frame or syntax
	// error), PoisonBudget times in a row with nothing confirmed in between.
	Invalid

	numReasons = int(Invalid) + 1
)

// DropReasons returns every DropReason, for callers that pre-create metric series.
func DropReasons() []DropReason {
	return []DropReason{Evicted, Nacked, Unroutable, TooLarge, Shutdown, Invalid}
}

// String is the snake_case name used in logs and metric labels.
func (r DropReason) String() string {
	switch r {
	case Evicted:
		return "evicted"
	case Nacked:
		return "nacked"
	case Unroutable:
		return "unroutable"
	case TooLarge:
		return "too_large"
	case Shutdown:
		return "shutdown"
	case Invalid:
		return "invalid"
	}
	return fmt.Sprintf("DropReason(%d)", uint8(r))
}
