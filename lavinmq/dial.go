package lavinmq

import (
	"context"
	"fmt"
	"net"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// dial opens one AMQP connection to url. The TCP connect and the TLS and AMQP
// handshakes are bounded by the dial timeout, and Close interrupts them.
// Every later write is bounded by the write timeout (deadlineConn), so a
// blackholed peer cannot hang a publisher forever.
func (c *Client) dial(url string) (*amqp.Connection, error) {
	props := amqp.NewConnectionProperties()
	if c.cfg.name != "" {
		props.SetClientConnectionName(c.cfg.name)
	}
	var stop func() bool
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
			return &deadlineConn{Conn: nc, timeout: c.cfg.writeTimeout}, nil
		},
	}
	if c.cfg.tls != nil {
		config.TLSClientConfig = c.cfg.tls.Clone()
	}
	conn, err := amqp.DialConfig(url, config)
	if stop != nil {
		stop()
	}
	if err != nil {
		return nil, fmt.Errorf("lavinmq: dial %s: %w", endpoint(url), err)
	}
	return conn, nil
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
