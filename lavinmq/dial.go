package lavinmq

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	neturl "net/url"
	"os"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// dial opens one AMQP connection to url. The TCP connect and the TLS and AMQP
// handshakes are bounded by the dial timeout, and Close interrupts them.
// Every later write is bounded by the write timeout (deadlineConn), so a
// blackholed peer cannot hang a publisher forever.
//
// For amqps:// the client makes the TLS connection itself (same layering as
// amqp091-go: TLS over deadlineConn) and hands amqp091-go the established
// *tls.Conn with the URL's scheme set to amqp and its port made explicit. This
// keeps the broker's TLS alert: with TLS 1.3 a broker refusing the client's
// certificate says so only after the client's handshake has completed, and
// amqp091-go would report only "channel/connection is not open" (504).
func (c *Client) dial(url string) (*amqp.Connection, error) {
	props := amqp.NewConnectionProperties()
	if c.cfg.name != "" {
		props.SetClientConnectionName(c.cfg.name)
	}
	target, tcfg, err := c.tlsTarget(url)
	if err != nil {
		return nil, fmt.Errorf("lavinmq: dial %s: %w", endpoint(url), err)
	}
	var stop func() bool
	var tc *tls.Conn
	config := amqp.Config{
		Heartbeat:  c.cfg.heartbeat,
		Properties: props,
		Locale:     "en_US",
		Dial: func(network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: c.cfg.dialTimeout}
			nc, err := d.DialContext(c.ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// amqp091-go clears this deadline once the handshake is complete.
			if err := nc.SetDeadline(time.Now().Add(c.cfg.dialTimeout)); err != nil {
				nc.Close()
				return nil, err
			}
			stop = context.AfterFunc(c.ctx, func() { nc.Close() })
			var conn net.Conn = &deadlineConn{Conn: nc, timeout: c.cfg.writeTimeout}
			if tcfg != nil {
				tc = tls.Client(conn, tcfg)
				if err := tc.HandshakeContext(c.ctx); err != nil {
					nc.Close()
					return nil, err
				}
				conn = tc
			}
			return conn, nil
		},
	}
	conn, err := amqp.DialConfig(target, config)
	if stop != nil {
		stop()
	}
	if err != nil {
		if alert := tlsAlert(tc, err); alert != nil {
			return nil, fmt.Errorf("lavinmq: dial %s: the broker ended the TLS connection: %w (amqp: %w)", endpoint(url), alert, err)
		}
		return nil, fmt.Errorf("lavinmq: dial %s: %w", endpoint(url), err)
	}
	return conn, nil
}

// tlsTarget returns the URL to give amqp091-go and, for amqps://, the TLS
// configuration of the connection: a clone of WithTLS's (never modified), or
// else one from the URL's TLS parameters (cacertfile, certfile, keyfile,
// server_name_indication; the system roots without cacertfile) as amqp091-go
// builds it. An empty ServerName becomes the URL's host, as in amqp091-go.
func (c *Client) tlsTarget(raw string) (string, *tls.Config, error) {
	if !isTLS(raw) {
		return raw, nil, nil
	}
	uri, err := amqp.ParseURI(raw)
	if err != nil {
		return "", nil, errors.New(scrub(err.Error(), raw))
	}
	var tcfg *tls.Config
	if c.cfg.tls != nil {
		tcfg = c.cfg.tls.Clone()
	} else if tcfg, err = tlsFromURI(uri); err != nil {
		return "", nil, err
	}
	if tcfg.ServerName == "" {
		tcfg.ServerName = uri.Host
	}
	u, err := neturl.Parse(raw)
	if err != nil {
		return "", nil, errors.New("malformed URL")
	}
	u.Scheme = "amqp"
	u.Host = net.JoinHostPort(uri.Host, strconv.Itoa(uri.Port)) // amqps' default port 5671 made explicit
	return u.String(), tcfg, nil
}

// tlsFromURI builds the TLS configuration from an amqps URL's parameters,
// like amqp091-go does when Config.TLSClientConfig is nil.
func tlsFromURI(uri amqp.URI) (*tls.Config, error) {
	tcfg := &tls.Config{ServerName: uri.ServerName, MinVersion: tls.VersionTLS12}
	if uri.CACertFile != "" {
		pem, err := os.ReadFile(uri.CACertFile)
		if err != nil {
			return nil, fmt.Errorf("read CA certificate: %w", err)
		}
		tcfg.RootCAs = x509.NewCertPool()
		if !tcfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no certificate in cacertfile %s", uri.CACertFile)
		}
	}
	if uri.CertFile != "" && uri.KeyFile != "" {
		kp, err := tls.LoadX509KeyPair(uri.CertFile, uri.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		tcfg.Certificates = []tls.Certificate{kp}
	}
	return tcfg, nil
}

// tlsAlert returns the TLS alert the broker sent on tc (a net.OpError
// "remote error") when the AMQP handshake failed with an error amqp091-go made
// itself (504 "channel/connection is not open", or 501 holding only the
// alert's text): crypto/tls keeps a connection's read error, so one more read
// returns it at once, with its type.
func tlsAlert(tc *tls.Conn, err error) error {
	if ae, ok := errors.AsType[*amqp.Error](err); tc == nil || !ok || ae.Server {
		return nil
	}
	_ = tc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	_, rerr := tc.Read(make([]byte, 1))
	if oe, ok := errors.AsType[*net.OpError](rerr); ok && oe.Op == "remote error" {
		return rerr
	}
	return nil
}

// deadlineConn sets a write deadline before every write.
type deadlineConn struct {
	net.Conn
	timeout time.Duration
}

func (d *deadlineConn) Write(p []byte) (int, error) {
	if err := d.Conn.SetWriteDeadline(time.Now().Add(d.timeout)); err != nil {
		return 0, err
	}
	return d.Conn.Write(p)
}
