package lavinmq_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

// TLS tests run against the broker's TLS listener (scripts/broker.sh): its
// certificate names localhost only, it asks for a client certificate
// (verify_peer) and accepts clients without one (fail_if_no_peer_cert = false).

// brokerConnection returns the broker's view of the connection named name:
// the columns ssl, peer_cert_subject of rabbitmqctl list_connections (on
// LavinMQ only ssl, from its HTTP API: testbroker.ConnTLS).
func brokerConnection(t *testing.T, name string) string {
	t.Helper()
	var row string
	testbroker.Eventually(t, 10*time.Second, "the broker lists connection "+name, func() bool {
		r, ok := testbroker.ConnTLS(t, name)
		row = r
		return ok
	})
	return row
}

func tlsHostURL(t *testing.T, host string) string {
	t.Helper()
	u, err := url.Parse(testbroker.TLSURL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Host = host + ":" + u.Port()
	return u.String()
}

func TestTLSConnectsWithTheRightCA(t *testing.T) {
	name := testbroker.Name(t, "conn")
	cfg := testbroker.TLSConfig(t, "ca.pem", "")
	c, _ := newClient(t, testbroker.TLSURL(t), lavinmq.WithTLS(cfg), lavinmq.WithConnectionName(name))
	waitConnected(t, c, 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.DeclareQueue(ctx, lavinmq.Queue{Name: testbroker.Name(t, "q"), AutoDelete: true}); err != nil {
		t.Fatalf("declare over TLS: %v", err)
	}
	row := brokerConnection(t, name)
	t.Logf("broker's view (ssl, peer_cert_subject): %s", row)
	if f := strings.Fields(row); len(f) == 0 || f[0] != "true" {
		t.Fatalf("broker does not see a TLS connection: %q", row)
	}
	if cfg.ServerName != "" {
		t.Fatalf("the caller's tls.Config was changed: ServerName %q", cfg.ServerName)
	}
}

// TestTLSServerNameComesFromURLHost: the certificate names localhost. The URL
// host is the name verified, so 127.0.0.1 fails (the certificate holds no IP
// address) unless tls.Config.ServerName says localhost.
func TestTLSServerNameComesFromURLHost(t *testing.T) {
	c, _ := newClient(t, tlsHostURL(t, "127.0.0.1"), lavinmq.WithTLS(testbroker.TLSConfig(t, "ca.pem", "")), lavinmq.WithFailFast())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := c.WaitConnected(ctx)
	t.Logf("amqps://…@127.0.0.1 with a certificate for localhost: %v", err)
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1") || !strings.Contains(err.Error(), "x509") {
		t.Fatalf("WaitConnected = %v, want an x509 error naming 127.0.0.1", err)
	}

	cfg := testbroker.TLSConfig(t, "ca.pem", "")
	cfg.ServerName = "localhost"
	c2, _ := newClient(t, tlsHostURL(t, "127.0.0.1"), lavinmq.WithTLS(cfg))
	waitConnected(t, c2, 10*time.Second)
}

// TestTLSClientCertificateIsAccepted: mTLS; the broker verifies the client
// certificate against its CA and records its subject.
func TestTLSClientCertificateIsAccepted(t *testing.T) {
	testbroker.RequireRabbitMQ(t, "LavinMQ 2.9.1 never asks for a client certificate and shows no peer certificate")
	name := testbroker.Name(t, "conn")
	c, _ := newClient(t, testbroker.TLSURL(t), lavinmq.WithTLS(testbroker.TLSConfig(t, "ca.pem", "client")), lavinmq.WithConnectionName(name))
	waitConnected(t, c, 10*time.Second)
	row := brokerConnection(t, name)
	t.Logf("broker's view (ssl, peer_cert_subject): %s", row)
	if !strings.Contains(row, "CN=lavinmq-go-client") {
		t.Fatalf("broker does not see the client certificate: %q", row)
	}
}

// TestTLSClientCertificateFromUnknownCAIsRefused: the broker asks for a
// client certificate (verify_peer) and refuses one its CA did not sign. The
// client must really send it: crypto/tls withholds a certificate from
// tls.Config.Certificates that no CA of the broker's request signed, so the
// test sends it through GetClientCertificate.
func TestTLSClientCertificateFromUnknownCAIsRefused(t *testing.T) {
	testbroker.RequireRabbitMQ(t, "LavinMQ 2.9.1 has no option to verify client certificates (no CA for peers, no verify_peer)")
	cfg := testbroker.TLSConfig(t, "ca.pem", "other-client")
	cert := cfg.Certificates[0]
	cfg.Certificates = nil
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	c, _ := newClient(t, testbroker.TLSURL(t), lavinmq.WithTLS(cfg), lavinmq.WithFailFast())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := c.WaitConnected(ctx)
	t.Logf("client certificate from an unknown CA: %v", err)
	if err == nil || !strings.Contains(err.Error(), "tls: ") || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("WaitConnected = %v, want the broker's TLS alert about the certificate", err)
	}
	if !errors.Is(err, lavinmq.ErrPermanent) {
		t.Fatalf("error %q does not wrap ErrPermanent: a refused certificate is permanent", err)
	}
}

// TestTLSUnmatchedClientCertificateIsWithheld: with the certificate in
// tls.Config.Certificates, crypto/tls does not send it (the broker's request
// names only its own CA) and, since the broker does not require one
// (fail_if_no_peer_cert = false), the connection is made without a client
// certificate. A broker that requires mTLS must set fail_if_no_peer_cert = true.
func TestTLSUnmatchedClientCertificateIsWithheld(t *testing.T) {
	name := testbroker.Name(t, "conn")
	c, _ := newClient(t, testbroker.TLSURL(t), lavinmq.WithTLS(testbroker.TLSConfig(t, "ca.pem", "other-client")), lavinmq.WithConnectionName(name))
	waitConnected(t, c, 10*time.Second)
	row := brokerConnection(t, name)
	t.Logf("broker's view (ssl, peer_cert_subject): %s", row)
	if f := strings.Fields(row); len(f) != 1 || f[0] != "true" {
		t.Fatalf("want a TLS connection without a client certificate, broker sees %q", row)
	}
}

func TestNewRefusesTLSWithPlainURL(t *testing.T) {
	cfg := testbroker.TLSConfig(t, "ca.pem", "")
	for _, tc := range []struct {
		name string
		url  string
		opts []lavinmq.Option
	}{
		{"amqp url", "amqp://guest:guest@localhost:5672/", nil},
		{"amqp failover url", "amqps://guest:guest@localhost:5671/", []lavinmq.Option{lavinmq.WithFailover("amqp://guest:guest@10.0.0.2:5672/")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := lavinmq.New(tc.url, append(tc.opts, lavinmq.WithTLS(cfg))...)
			if err == nil {
				c.Close()
				t.Fatal("New accepted WithTLS with an amqp:// URL (it would connect in plaintext)")
			}
			t.Logf("New: %v", err)
			if !errors.Is(err, lavinmq.ErrInvalidConfig) || !strings.Contains(err.Error(), "amqps") {
				t.Fatalf("error %v: want ErrInvalidConfig naming amqps", err)
			}
		})
	}
}

// TestTLSFromURLParameters: without WithTLS, an amqps URL's cacertfile,
// certfile and keyfile parameters configure TLS, as in amqp091-go.
func TestTLSFromURLParameters(t *testing.T) {
	testbroker.RequireRabbitMQ(t, "LavinMQ 2.9.1 never asks for a client certificate and shows no peer certificate")
	name := testbroker.Name(t, "conn")
	q := url.Values{}
	q.Set("cacertfile", testbroker.TLSFile(t, "ca.pem"))
	q.Set("certfile", testbroker.TLSFile(t, "client.pem"))
	q.Set("keyfile", testbroker.TLSFile(t, "client.key"))
	c, _ := newClient(t, testbroker.TLSURL(t)+"?"+q.Encode(), lavinmq.WithConnectionName(name))
	waitConnected(t, c, 10*time.Second)
	if row := brokerConnection(t, name); !strings.Contains(row, "CN=lavinmq-go-client") {
		t.Fatalf("broker does not see the client certificate from certfile: %q", row)
	}
}
