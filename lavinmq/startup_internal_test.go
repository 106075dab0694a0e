package lavinmq

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestPermanentClassifiesStartupErrors(t *testing.T) {
	dial := func(err error) error { return fmt.Errorf("lavinmq: dial h:1: %w", err) }
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"login refused 403", dial(amqp.ErrCredentials), true},
		{"broker's 403", dial(&amqp.Error{Code: amqp.AccessRefused, Reason: "ACCESS_REFUSED - Login was refused", Server: true}), true},
		{"vhost not found 530", dial(&amqp.Error{Code: amqp.NotAllowed, Reason: "NOT_ALLOWED - vhost x not found", Server: true}), true},
		{"connection limit 530", dial(&amqp.Error{Code: amqp.NotAllowed, Reason: "NOT_ALLOWED - access to vhost '/' refused for user 'u': connection limit (10) is reached", Server: true}), false},
		{"forced close 320", dial(&amqp.Error{Code: amqp.ConnectionForced, Reason: "CONNECTION_FORCED", Server: true}), false},
		{"not open 504", dial(amqp.ErrClosed), false},
		{"untrusted CA", dial(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), true},
		{"bare x509 hostname", dial(x509.HostnameError{Host: "127.0.0.1", Certificate: &x509.Certificate{}}), true},
		{"broker's TLS alert", dial(fmt.Errorf("the broker ended the TLS connection: %w (amqp: %w)",
			&net.OpError{Op: "remote error", Err: errors.New("tls: unknown certificate authority")}, &amqp.Error{Code: amqp.FrameError})), true},
		{"other remote TLS error", dial(&net.OpError{Op: "remote error", Err: errors.New("tls: protocol version not supported")}), false},
		{"refused", dial(&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}), false},
		{"timeout", dial(context.DeadlineExceeded), false},
	}
	for _, tc := range cases {
		if got := permanent(tc.err); got != tc.want {
			t.Errorf("%s: permanent(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
