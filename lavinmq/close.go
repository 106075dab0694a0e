package lavinmq

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// DefaultShutdownTimeout bounds Close: how long the producers and consumers
// on the client get to settle what they hold before they drop it (reason
// shutdown) and the connection is closed. CloseContext takes the caller's bound.
const DefaultShutdownTimeout = 5 * time.Second

// closers is the set of functions Close runs before it closes the
// connection: the Close methods of the producers and consumers on the client.
type closers struct {
	mu      sync.Mutex
	closing bool // set when Close begins: no more closers are added
	next    uint64
	fs      map[uint64]func(context.Context) error

	once sync.Once
	err  error
	done chan struct{} // closed when the first Close has finished
}

// AddCloser registers f to be run, with Close's ctx, when the client is
// closed, before its connection goes: producer.New and consumer.New register
// their Close so that closing the client first settles (or reports) what they
// hold. The returned remove unregisters f (call it when the owner closes by
// itself; it is safe to call more than once). AddCloser fails with ErrClosed
// once Close has begun.
func (c *Client) AddCloser(f func(ctx context.Context) error) (remove func(), err error) {
	if f == nil {
		return nil, fmt.Errorf("%w: nil closer", ErrInvalidConfig)
	}
	c.closers.mu.Lock()
	defer c.closers.mu.Unlock()
	if c.closers.closing {
		return nil, ErrClosed
	}
	if c.closers.fs == nil {
		c.closers.fs = map[uint64]func(context.Context) error{}
	}
	id := c.closers.next
	c.closers.next++
	c.closers.fs[id] = f
	return func() {
		c.closers.mu.Lock()
		delete(c.closers.fs, id)
		c.closers.mu.Unlock()
	}, nil
}

// Close closes the client within DefaultShutdownTimeout (WithShutdownTimeout
// changes it); see CloseContext.
func (c *Client) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.shutdownTimeout)
	defer cancel()
	return c.CloseContext(ctx)
}

// CloseContext closes the client. First every producer and consumer on it is
// closed with ctx, in parallel, while the connection stays up: producers
// flush until ctx ends and report what is left with reason shutdown,
// consumers finish their handlers. Then the connection is closed, bounded
// even when the broker does not answer: a broker that blocks the connection
// (connection.blocked) reads nothing from it, so the close handshake gets
// DefaultCloseTimeout (2s), after which the socket is closed. That also ends
// every call of a producer or consumer still waiting on this connection (a
// stalled write, a channel close), so their goroutines end too; every
// goroutine the client started has ended when it returns. It returns nil when nothing had to be dropped,
// otherwise the producers' and consumers' errors joined (errors.Is finds
// producer.ErrDropped). It is idempotent: later calls wait for the first and
// return its result; every other call on the client returns ErrClosed.
func (c *Client) CloseContext(ctx context.Context) error {
	if ctx == nil {
		return fmt.Errorf("%w: nil context", ErrInvalidConfig)
	}
	c.closers.once.Do(func() {
		c.closers.done = make(chan struct{})
		c.closers.err = c.shutdown(ctx)
		close(c.closers.done)
	})
	<-c.closers.done
	return c.closers.err
}

func (c *Client) shutdown(ctx context.Context) error {
	c.closers.mu.Lock()
	c.closers.closing = true
	fs := make([]func(context.Context) error, 0, len(c.closers.fs))
	for _, f := range c.closers.fs {
		fs = append(fs, f)
	}
	c.closers.mu.Unlock()
	errs := make([]error, len(fs))
	var wg sync.WaitGroup
	for i, f := range fs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(ctx)
		}()
	}
	wg.Wait()

	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	<-c.done
	c.wg.Wait()
	return errors.Join(errs...)
}
