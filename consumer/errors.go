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
)
