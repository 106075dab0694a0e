package lavinmq

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"
)

// permanent reports whether a failed dial will fail again however often it is
// retried: the broker refused the login (403) or the vhost (530, except a
// connection limit, which clears by itself), or TLS certificate verification
// failed on our side (an untrusted CA, a name the certificate does not hold,
// an expired certificate) or on the broker's (a TLS alert about our certificate).
func permanent(err error) bool {
	if _, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		return true
	}
	if _, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
		return true
	}
	if _, ok := errors.AsType[x509.HostnameError](err); ok {
		return true
	}
	if _, ok := errors.AsType[x509.CertificateInvalidError](err); ok {
		return true
	}
	// A TLS alert from the broker arrives as net.OpError{Op: "remote error"}
	// around an unexported alert type; its text names the certificate problem
	// ("tls: unknown certificate authority", "tls: certificate required", ...).
	if oe, ok := errors.AsType[*net.OpError](err); ok && oe.Op == "remote error" && oe.Err != nil {
		msg := oe.Err.Error()
		if strings.Contains(msg, "certificate") || strings.Contains(msg, "access denied") {
			return true
		}
	}
	if ae, ok := errors.AsType[*amqp.Error](err); ok {
		switch ae.Code {
		case amqp.AccessRefused:
			return true
		case amqp.NotAllowed:
			return !strings.Contains(strings.ToLower(ae.Reason), "limit")
		}
	}
	return false
}

// gaveUpError is returned by every call after WithFailFast stopped the client.
type gaveUpError struct{ cause error }

func (e *gaveUpError) Error() string {
	return "lavinmq: gave up connecting (WithFailFast: permanent error on the first connection): " + e.cause.Error()
}

func (e *gaveUpError) Unwrap() []error { return []error{ErrPermanent, ErrClosed, e.cause} }

// scrubbedError renders an error with the URL passwords removed and keeps the
// original reachable for errors.Is and errors.As.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// safe returns err, or a scrubbedError when its text holds a URL password.
func (c *Client) safe(err error) error {
	if err == nil {
		return nil
	}
	if msg := c.safeErr(err); msg != err.Error() {
		return &scrubbedError{msg: msg, err: err}
	}
	return err
}
