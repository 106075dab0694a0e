package lavinmq

import "errors"

// Sentinel errors. Errors returned by the client wrap one of these with %w
// and, where the broker refused something, keep the *amqp091.Error reachable
// through errors.As.
var (
	// ErrInvalidConfig reports a bad URL or option value given to New.
	ErrInvalidConfig = errors.New("lavinmq: invalid configuration")
	// ErrClosed is returned by every call made after Close, and after the
	// client gave up (WithFailFast; the error then wraps ErrPermanent too).
	ErrClosed = errors.New("lavinmq: client closed")
	// ErrPermanent reports that, with WithFailFast, the first connection failed
	// with an error retrying cannot fix (login or vhost refused, TLS
	// certificate verification) and the client stopped dialling.
	ErrPermanent = errors.New("lavinmq: permanent connection failure")
	// ErrConnectionLost is returned when the connection a call was using went away.
	ErrConnectionLost = errors.New("lavinmq: connection lost")
	// ErrInvalidTopology reports a declaration that cannot be sent (an empty name, a nil value).
	ErrInvalidTopology = errors.New("lavinmq: invalid topology")
)
