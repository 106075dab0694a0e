package consumer

import "errors"

// Sentinel errors. Errors returned by the package wrap one of these with %w.
var (
	// ErrInvalidConfig reports a bad option value, a nil client or an empty queue name given to New.
	ErrInvalidConfig = errors.New("consumer: invalid configuration")
	// ErrNilHandler is returned by Run when the handler is nil.
	ErrNilHandler = errors.New("consumer: nil handler")
	// ErrRunning is returned by Run while another Run of the same Consumer is active.
	ErrRunning = errors.New("consumer: already running")
	// ErrClosed is returned by Run after Close.
	ErrClosed = errors.New("consumer: closed")
	// ErrDeclare is returned by Run when the broker refuses WithDeclare's
	// declaration as inequivalent to the existing queue (406
	// PRECONDITION_FAILED) or locked by another connection (405
	// RESOURCE_LOCKED): a configuration error that retrying cannot fix. The
	// *amqp091.Error stays reachable with errors.As.
	ErrDeclare = errors.New("consumer: queue declaration refused")

	errWrittenToClosed = errors.New("consumer: ack written to a channel already closed")
)
