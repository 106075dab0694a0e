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
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// blockedPoll is how often a write stalled on a blocked connection looks
// again at the blocked state (and at the client closing).
const blockedPoll = 100 * time.Millisecond

// dial opens one AMQP connection to url. The TCP connect and the TLS and AMQP
// handshakes are bounded by the dial timeout, and Close interrupts them.
// Every later write is bounded by the write timeout (deadlineConn), so a
// blackholed peer cannot hang a publisher forever, except while the broker
// has blocked the connection (connection.blocked): then a stalled write is
// back-pressure, and it waits until the broker unblocks the connection, the
// connection is lost (heartbeats still detect a dead peer) or the client is
// closed.
//
// For amqps:// the client makes the TLS connection itself (same layering as
// amqp091-go: TLS over deadlineConn) and hands amqp091-go the established
// *tls.Conn with the URL's scheme set to amqp and its port made explicit. This
// keeps the broker's TLS alert: with TLS 1.3 a broker refusing the client's
// certificate says so only after the client's handshake has completed, and
// amqp091-go would report only "channel/connection is not open" (504).
//
// Above both, unless WithWriteCoalescing(false), sits the corkConn that
// Conn.Cork corks (cork.go); it is returned with the connection.
func (c *Client) dial(url string) (*amqp.Connection, *corkConn, error) {
	props := amqp.NewConnectionProperties()
	if c.cfg.name != "" {
		props.SetClientConnectionName(c.cfg.name)
	}
	target, tcfg, err := c.tlsTarget(url)
	if err != nil {
		return nil, nil, fmt.Errorf("lavinmq: dial %s: %w", endpoint(url), err)
	}
	var stop func() bool
	var cork *corkConn
	var tc *tls.Conn
	var owner atomic.Pointer[amqp.Connection] // set once the handshake is done
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
			var conn net.Conn = &deadlineConn{Conn: nc, timeout: c.cfg.writeTimeout, poll: blockedPoll,
				blocked: func() bool { return c.blockedOn(owner.Load()) }}
			if tcfg != nil {
				tc = tls.Client(conn, tcfg)
				if err := tc.HandshakeContext(c.ctx); err != nil {
					nc.Close()
					return nil, err
				}
				conn = tc
			}
			if !c.cfg.noCork {
				cork = &corkConn{Conn: conn, raw: nc}
				conn = cork
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
			return nil, nil, fmt.Errorf("lavinmq: dial %s: the broker ended the TLS connection: %w (amqp: %w)", endpoint(url), alert, err)
		}
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.NotAllowed {
			// RabbitMQ's 530 names the vhost, LavinMQ's ("vhost not found") does not.
			return nil, nil, fmt.Errorf("lavinmq: dial %s vhost %q: %w", endpoint(url), vhostOf(url), err)
		}
		return nil, nil, fmt.Errorf("lavinmq: dial %s: %w", endpoint(url), err)
	}
	owner.Store(conn)
	return conn, cork, nil
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

// blockedOn reports whether the broker has blocked conn, the connection in
// service, and the client is not closing.
func (c *Client) blockedOn(conn *amqp.Connection) bool {
	if conn == nil || conn.IsClosed() || c.ctx.Err() != nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.blocked && c.cur != nil && c.cur.conn == conn
}

// deadlineConn is the socket under amqp091-go. It enforces three rules:
//
//   - Every write has a deadline of timeout, renewed at every Write call. A
//     write that makes no progress for that long fails, and amqp091-go then
//     closes the connection (a dead peer with full buffers cannot hang it).
//   - Except while the broker blocks the connection: RabbitMQ stops reading
//     the socket of a blocked connection, so a burst fills the socket buffers
//     and the write stalls until the alarm clears. While blocked() holds, a
//     write that times out goes on (checking every poll), and once the
//     connection is unblocked it gets a full timeout again.
//   - A deadline set with SetDeadline (amqp091-go's CloseDeadline) is hard:
//     no write outlives it, and the socket is closed when it passes, which
//     ends a close handshake that a blocked broker does not answer (its
//     heartbeats would otherwise keep renewing the read deadline) and every
//     write stalled on it.
//
// Reads: amqp091-go's heartbeater renews the read deadline (3 heartbeats)
// after every frame read, but it cannot while it waits to send a heartbeat
// behind a stalled write. So a read that times out while data arrived less
// than that span ago goes on: the peer is alive. A peer that sends nothing for
// the span is still detected, blocked or not.
type deadlineConn struct {
	net.Conn
	timeout time.Duration
	poll    time.Duration
	blocked func() bool // the broker has blocked this connection; nil: never

	lastRead atomic.Int64 // unix ns of the last read that returned data
	span     atomic.Int64 // ns: the last read deadline set through SetReadDeadline, from then

	mu     sync.Mutex
	limit  time.Time   // hard deadline from SetDeadline; zero: none
	timer  *time.Timer // closes the socket at limit
	closed bool
}

func (d *deadlineConn) isBlocked() bool { return d.blocked != nil && d.blocked() }

func (d *deadlineConn) hardLimit() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.limit
}

// Write writes p with the deadline rules above.
func (d *deadlineConn) Write(p []byte) (int, error) {
	written := 0
	for {
		blocked := d.isBlocked()
		wait := d.timeout
		if blocked {
			wait = min(wait, d.poll)
		}
		dl, hard := time.Now().Add(wait), false
		if lim := d.hardLimit(); !lim.IsZero() && !lim.After(dl) {
			dl, hard = lim, true
		}
		if err := d.Conn.SetWriteDeadline(dl); err != nil {
			return written, err
		}
		n, err := d.Conn.Write(p[written:])
		written += n
		if err == nil || hard || !errors.Is(err, os.ErrDeadlineExceeded) {
			return written, err
		}
		if !blocked && !d.isBlocked() {
			return written, err // no progress for timeout on a connection that is not blocked
		}
		// Blocked when the write began or now: back-pressure, not a dead peer.
	}
}

// Read reads into p; see the type's comment for its deadline rule.
func (d *deadlineConn) Read(p []byte) (int, error) {
	for {
		n, err := d.Conn.Read(p)
		now := time.Now()
		if n > 0 {
			d.lastRead.Store(now.UnixNano())
		}
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) || !d.hardLimit().IsZero() {
			return n, err
		}
		span := time.Duration(d.span.Load())
		last := time.Unix(0, d.lastRead.Load())
		if n > 0 || span <= 0 || now.Sub(last) >= span {
			return n, err // nothing from the peer for the whole span: it is gone
		}
		if err := d.Conn.SetReadDeadline(last.Add(span)); err != nil {
			return 0, err
		}
	}
}

// SetReadDeadline sets the read deadline and remembers its span for Read.
func (d *deadlineConn) SetReadDeadline(t time.Time) error {
	if t.IsZero() {
		d.span.Store(0)
	} else {
		d.span.Store(int64(time.Until(t)))
	}
	return d.Conn.SetReadDeadline(t)
}

// SetDeadline sets a hard deadline (zero clears it): see the type's comment.
func (d *deadlineConn) SetDeadline(t time.Time) error {
	d.mu.Lock()
	d.limit = t
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	if !t.IsZero() && !d.closed {
		d.timer = time.AfterFunc(time.Until(t), func() { _ = d.Conn.Close() })
	}
	d.mu.Unlock()
	if err := d.Conn.SetDeadline(t); err != nil || !t.IsZero() {
		return err
	}
	// amqp091-go clears every deadline once the handshake is done and arms the
	// read deadline again only at the next frame read: a peer silent from then
	// on would never be detected (LavinMQ sends its first heartbeat half an
	// interval after open-ok, so a blackhole right after connecting hit this).
	// Keep the read deadline of the span set while reading the handshake.
	if span, last := time.Duration(d.span.Load()), d.lastRead.Load(); span > 0 && last > 0 {
		return d.Conn.SetReadDeadline(time.Unix(0, last).Add(span))
	}
	return nil
}

// Close closes the socket and disarms the hard deadline.
func (d *deadlineConn) Close() error {
	d.mu.Lock()
	d.closed = true
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	d.mu.Unlock()
	return d.Conn.Close()
}
