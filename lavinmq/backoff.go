package lavinmq

import (
	"math/rand/v2"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// reconnectBackoff is the reconnect delay policy: exponential growth from
// backoff.ExponentialBackOff (without its own randomization) and a jitter
// capped at the max delay: a delay d is drawn uniformly from
// [d·(1−j), min(d·(1+j), max)], so the max delay is a true bound and delays at
// the cap still spread over [max·(1−j), max].
//
// Owned by the supervisor goroutine (run); not safe for concurrent use.
type reconnectBackoff struct {
	exp    backoff.ExponentialBackOff
	jitter float64
	max    time.Duration
}

// NextBackOff returns the next delay and grows the base delay.
func (b *reconnectBackoff) NextBackOff() time.Duration {
	d := float64(b.exp.NextBackOff())
	lo, hi := d*(1-b.jitter), min(d*(1+b.jitter), float64(b.max))
	if hi <= lo {
		return time.Duration(hi)
	}
	return time.Duration(lo + rand.Float64()*(hi-lo))
}

// Reset starts the growth over at the initial delay.
func (b *reconnectBackoff) Reset() { b.exp.Reset() }

// newBackoff returns the reconnect delay policy of this configuration.
func (c *cfg) newBackoff() *reconnectBackoff {
	b := &reconnectBackoff{jitter: c.jitter, max: c.maxDelay}
	b.exp = backoff.ExponentialBackOff{
		InitialInterval: c.initialDelay,
		Multiplier:      c.multiplier,
		MaxInterval:     c.maxDelay,
	}
	b.exp.Reset()
	return b
}

// stableAfter is how long a connection must stay up for the backoff to start
// over at the initial delay after it is lost: max(1s, 10 × initial delay). A
// shorter-lived connection (a broker or load balancer that accepts and then
// drops) does not reset it, so each redial waits longer than the previous one.
func (c *cfg) stableAfter() time.Duration {
	return max(time.Second, 10*c.initialDelay)
}
