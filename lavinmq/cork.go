package lavinmq

import (
	"net"
	"sync"
	"sync/atomic"
)

// CorkMaxBytes is the most a corked connection buffers. A write that would
// take the buffer past it goes to the socket at once, together with what is
// buffered, so that a cork never holds more than this much of anybody's data.
const CorkMaxBytes = 64 << 10

// WithWriteCoalescing turns write coalescing on (the default) or off.
//
// amqp091-go flushes its buffered writer after every frame group it sends: one
// write syscall per published message. With coalescing on, a producer's
// publisher goroutine corks the connection (Conn.Cork) for one burst of
// messages, so the burst reaches the socket in one write (at most
// CorkMaxBytes each) instead of one per message. Off, every flush of
// amqp091-go is a write to the socket, as in plain amqp091-go.
func WithWriteCoalescing(on bool) Option {
	return optionFunc(func(c *cfg) { c.noCork = !on })
}

// Cork starts holding this connection's writes in a buffer and returns the
// function that ends the cork: it writes everything buffered, by any
// goroutine, to the socket in one write and returns that write's error. Call
// it exactly once, soon: while a cork is held, every other writer of the
// connection (a consumer's ack, a heartbeat, a channel open or close) waits in
// the buffer for it, so hold a cork only around one bounded burst of
// publishes, and end it before anything that waits on the broker (a full
// confirm window: the broker cannot confirm what it has not received).
//
// Several goroutines may cork one connection at once: the end of any cork
// writes everything buffered, so data waits at most until the first of the
// corks held when it was written ends, and never past CorkMaxBytes. A failed
// write closes the connection (the stream may end mid-frame): the messages of
// the burst are then unconfirmed and the client reconnects as after any loss.
// The write deadline (WithWriteTimeout) bounds the real write as any other.
//
// With WithWriteCoalescing(false), Cork does nothing and its function returns nil.
func (cn *Conn) Cork() (uncork func() error) {
	cc := cn.cork
	if cc == nil {
		return uncorked
	}
	cc.corks.Add(1)
	var done atomic.Bool
	return func() error {
		if done.Swap(true) {
			return nil
		}
		return cc.uncork()
	}
}

func uncorked() error { return nil }

// corkConn is the net.Conn that amqp091-go writes to, above TLS (so that a
// burst is also written in few TLS records) and above deadlineConn, which
// bounds each real write.
//
// Bytes reach Conn in the order amqp091-go wrote them: amqp091-go writes
// whole frames to its bufio.Writer under its own send mutex, and bufio hands
// them on in order (a frame larger than bufio's buffer in several Writes);
// mu serialises the buffer and every real write, and a write while nobody
// corks first writes what is buffered. So a cork boundary can fall inside a
// frame without harm: the rest of the frame follows in the stream.
//
// Who flushes: the end of every cork writes the whole buffer, and so does a
// write that would take it past CorkMaxBytes. Data appended at time t is
// written by the end of a cork that was held at t: corks counts the corks
// held, and an ending cork lowers it before it takes mu, so any writer that
// saw corks > 0 under mu appended before some cork's end takes mu.
type corkConn struct {
	net.Conn          // the TLS connection or the deadlineConn
	raw      net.Conn // the TCP connection: closed when a real write fails

	corks atomic.Int32 // corks held; an atomic so that Cork never waits for a real write

	mu  sync.Mutex
	buf []byte // corked data, at most CorkMaxBytes (capacity allocated once)
	err error  // the first failed real write: every later write fails with it
}

// Write buffers p while the connection is corked, else writes it (after
// what is buffered).
func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	corked := c.corks.Load() > 0
	if corked && len(c.buf)+len(p) <= CorkMaxBytes {
		if c.buf == nil {
			c.buf = make([]byte, 0, CorkMaxBytes)
		}
		c.buf = append(c.buf, p...)
		return len(p), nil
	}
	if err := c.flushLocked(); err != nil {
		return 0, err
	}
	if corked && len(p) < CorkMaxBytes/2 {
		c.buf = append(c.buf, p...)
		return len(p), nil
	}
	n, err := c.Conn.Write(p)
	if err != nil {
		c.failLocked(err)
	}
	return n, err
}

// uncork ends one cork and writes everything buffered.
func (c *corkConn) uncork() error {
	c.corks.Add(-1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	return c.flushLocked()
}

// flushLocked writes the buffer in one write. c.mu is held.
func (c *corkConn) flushLocked() error {
	if len(c.buf) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.buf)
	c.buf = c.buf[:0]
	if err != nil {
		c.failLocked(err)
	}
	return err
}

// failLocked keeps the error of a failed real write and closes the TCP
// connection: the stream may have ended mid-frame, and amqp091-go, which saw
// its writes succeed, learns of the loss from its reader at once. c.mu is held.
func (c *corkConn) failLocked(err error) {
	c.err = err
	c.buf = c.buf[:0]
	_ = c.raw.Close()
}

// Close closes the connection; what is buffered is discarded (the
// connection is going away, its messages are unconfirmed).
// The socket is closed first, so that a real write stalled on it (holding
// mu) ends at once.
func (c *corkConn) Close() error {
	err := c.Conn.Close()
	c.mu.Lock()
	c.err = net.ErrClosed
	c.buf = c.buf[:0]
	c.mu.Unlock()
	return err
}
