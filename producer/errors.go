package producer

import "errors"

// Sentinel errors; returned errors wrap them with %w.
var (
	// ErrClosed is returned by Publish after Close (or after the client was closed).
	ErrClosed = errors.New("producer: closed")
	// ErrInvalidConfig reports a bad argument or option given to New.
	ErrInvalidConfig = errors.New("producer: invalid configuration")
	// ErrTooLarge is returned by Publish for a body over the maximum message size.
	ErrTooLarge = errors.New("producer: message too large")
	// ErrInvalidMessage is returned by Publish for a message that cannot be
	// sent; the error names the field (a short string over 255 bytes, a header
	// value amqp091-go cannot encode...).
	ErrInvalidMessage = errors.New("producer: invalid message")
	// ErrInvalidArgument is returned for a nil context.
	ErrInvalidArgument = errors.New("producer: invalid argument")
	// ErrDropped is wrapped by Close's error when it had to drop messages
	// with reason Shutdown.
	ErrDropped = errors.New("producer: messages dropped")
)
