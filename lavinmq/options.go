package lavinmq

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"
)

// Defaults of the options: what a Client uses for an option not given to New.
const (
	DefaultReconnectInitialDelay = 100 * time.Millisecond
	DefaultReconnectMaxDelay     = 30 * time.Second
	DefaultReconnectMultiplier   = 2.0
	DefaultReconnectJitter       = 0.5 // each delay is drawn from [d*(1-j), min(d*(1+j), max delay)]
	DefaultHealthCheckInterval   = 100 * time.Millisecond
	DefaultHeartbeat             = 10 * time.Second
	DefaultDialTimeout           = 5 * time.Second
	DefaultWriteTimeout          = 30 * time.Second
	DefaultCloseTimeout          = 2 * time.Second
)

// cfg holds every setting of a Client. Defaults live in defaultConfig; New
// applies the options and then validates the whole config once.
type cfg struct {
	urls            []string
	initialDelay    time.Duration
	maxDelay        time.Duration
	multiplier      float64
	jitter          float64
	healthInterval  time.Duration
	heartbeat       time.Duration
	dialTimeout     time.Duration
	writeTimeout    time.Duration
	closeTimeout    time.Duration
	shutdownTimeout time.Duration
	tls             *tls.Config
	failFast        bool
	noCork          bool // WithWriteCoalescing(false)
	name            string
	logger          *slog.Logger
	hooks           []any

	// Test seams (set only by tests in this package).
	ignoreCloseNotify bool                                 // act as if NotifyClose never fired
	after             func(time.Duration) <-chan time.Time // replaces time.After for backoff waits
}

func defaultConfig() cfg {
	return cfg{
		initialDelay:    DefaultReconnectInitialDelay,
		maxDelay:        DefaultReconnectMaxDelay,
		multiplier:      DefaultReconnectMultiplier,
		jitter:          DefaultReconnectJitter,
		healthInterval:  DefaultHealthCheckInterval,
		heartbeat:       DefaultHeartbeat,
		dialTimeout:     DefaultDialTimeout,
		writeTimeout:    DefaultWriteTimeout,
		closeTimeout:    DefaultCloseTimeout,
		shutdownTimeout: DefaultShutdownTimeout,
		logger:          slog.New(slog.DiscardHandler),
		after:           time.After,
	}
}

func (c *cfg) validate() error {
	if len(c.urls) == 0 {
		return fmt.Errorf("%w: no broker URL", ErrInvalidConfig)
	}
	for _, u := range c.urls {
		if err := validateURL(u); err != nil {
			return err
		}
		if c.tls != nil && !isTLS(u) {
			return fmt.Errorf("%w: WithTLS is set but broker URL %q is not amqps:// (it would connect in plaintext)", ErrInvalidConfig, redact(u))
		}
	}
	switch {
	case c.initialDelay <= 0:
		return fmt.Errorf("%w: reconnect initial delay must be > 0, got %v", ErrInvalidConfig, c.initialDelay)
	case c.maxDelay < c.initialDelay:
		return fmt.Errorf("%w: reconnect max delay %v is below the initial delay %v", ErrInvalidConfig, c.maxDelay, c.initialDelay)
	case c.multiplier < 1:
		return fmt.Errorf("%w: reconnect multiplier must be >= 1, got %v", ErrInvalidConfig, c.multiplier)
	case c.jitter < 0 || c.jitter >= 1:
		return fmt.Errorf("%w: reconnect jitter must be in [0, 1), got %v", ErrInvalidConfig, c.jitter)
	case c.healthInterval <= 0:
		return fmt.Errorf("%w: health-check interval must be > 0, got %v", ErrInvalidConfig, c.healthInterval)
	case c.heartbeat < time.Second:
		return fmt.Errorf("%w: heartbeat must be at least 1s (AMQP counts whole seconds), got %v", ErrInvalidConfig, c.heartbeat)
	case c.dialTimeout <= 0:
		return fmt.Errorf("%w: dial timeout must be > 0, got %v", ErrInvalidConfig, c.dialTimeout)
	case c.shutdownTimeout <= 0:
		return fmt.Errorf("%w: shutdown timeout must be > 0, got %v", ErrInvalidConfig, c.shutdownTimeout)
	case c.writeTimeout <= 0:
		return fmt.Errorf("%w: write timeout must be > 0, got %v", ErrInvalidConfig, c.writeTimeout)
	case c.logger == nil:
		return fmt.Errorf("%w: nil logger", ErrInvalidConfig)
	}
	for i, h := range c.hooks {
		if h == nil {
			return fmt.Errorf("%w: hook %d is nil", ErrInvalidConfig, i)
		}
		if !isHook(h) {
			return fmt.Errorf("%w: hook %d (%T) implements none of the client's hook interfaces (HookConnected, HookDisconnected, HookReconnectAttempt, HookBlocked, HookTopologyError)", ErrInvalidConfig, i, h)
		}
	}
	return nil
}

// Option configures a Client. Options are validated together in New.
type Option interface{ apply(*cfg) }

type optionFunc func(*cfg)

func (f optionFunc) apply(c *cfg) { f(c) }

// WithReconnectDelay sets the first delay between reconnect attempts and the
// cap that exponential growth stops at (defaults 100ms and 30s). The cap is a
// true bound: jitter never takes a delay above it. The backoff starts over at
// the initial delay only after a connection has stayed up for max(1s, 10 ×
// initial); a connection lost sooner is followed by the next, longer delay.
func WithReconnectDelay(initial, max time.Duration) Option {
	return optionFunc(func(c *cfg) { c.initialDelay, c.maxDelay = initial, max })
}

// WithReconnectMultiplier sets the growth factor of the reconnect delay (default 2.0).
func WithReconnectMultiplier(m float64) Option {
	return optionFunc(func(c *cfg) { c.multiplier = m })
}

// WithReconnectJitter sets the randomization factor j in [0, 1): every delay d
// is drawn uniformly from [d*(1-j), min(d*(1+j), max delay)] so that many
// clients do not reconnect at the same instant (default 0.5). After a stable
// connection is lost, the first redial waits a random [0, 2·j·initial delay).
func WithReconnectJitter(j float64) Option {
	return optionFunc(func(c *cfg) { c.jitter = j })
}

// WithHealthCheckInterval sets how often the client polls its connection as a
// failsafe for a missed close notification (default 100ms).
func WithHealthCheckInterval(d time.Duration) Option {
	return optionFunc(func(c *cfg) { c.healthInterval = d })
}

// WithHeartbeat sets the AMQP heartbeat interval proposed to the broker
// (default 10s). A dead peer is detected after about three intervals. A
// heartbeat in the URL (?heartbeat=N) takes precedence.
func WithHeartbeat(d time.Duration) Option {
	return optionFunc(func(c *cfg) { c.heartbeat = d })
}

// WithDialTimeout bounds the TCP connect plus the TLS and AMQP handshakes of one attempt (default 5s).
func WithDialTimeout(d time.Duration) Option {
	return optionFunc(func(c *cfg) { c.dialTimeout = d })
}

// WithWriteTimeout bounds every write to the socket (default 30s). A write that
// makes no progress for that long (a blackholed peer with full buffers) fails
// the connection, which is then replaced. Not while the broker blocks the
// connection (connection.blocked): RabbitMQ then stops reading the socket, so
// a stalled write is back-pressure and waits for the unblock (and gets a full
// timeout again from then); heartbeats still detect a dead peer meanwhile.
func WithWriteTimeout(d time.Duration) Option {
	return optionFunc(func(c *cfg) { c.writeTimeout = d })
}

// WithShutdownTimeout sets the bound of Close (default
// DefaultShutdownTimeout, 5s): how long producers and consumers on the client
// get to settle what they hold before it is reported dropped (reason
// shutdown) and the connection is closed. CloseContext takes a ctx instead.
func WithShutdownTimeout(d time.Duration) Option {
	return optionFunc(func(c *cfg) { c.shutdownTimeout = d })
}

// WithFailover adds broker URLs tried in turn after the one given to New, for
// example the other nodes of a cluster.
func WithFailover(urls ...string) Option {
	return optionFunc(func(c *cfg) { c.urls = append(c.urls, urls...) })
}

// WithTLS sets the TLS configuration of amqps:// URLs (without it, amqps uses
// the system roots). Every broker URL must then be amqps://: New refuses an
// amqp:// URL with ErrInvalidConfig rather than connect in plaintext. The
// configuration is cloned for each dial and never modified; when its
// ServerName is empty, the name verified is the URL's host (a URL with an IP
// address needs a certificate holding that IP, or ServerName set to a name the
// certificate holds). Set Certificates for mutual TLS.
func WithTLS(t *tls.Config) Option {
	return optionFunc(func(c *cfg) { c.tls = t })
}

// WithFailFast makes errors that retrying cannot fix end the wait for the
// first connection at once: the broker refusing the login or the vhost (403,
// 530 other than a connection limit) or TLS certificate verification failing
// on either side, on any of the URLs (failover URLs are not tried after it).
// The client then gives up: it stops dialling, and
// WaitConnected, Connection and every later call return that error at once,
// wrapping ErrPermanent, ErrClosed and the cause (the *amqp091.Error stays
// reachable through errors.As). Call Close as usual. Other errors (refused,
// timeouts, a broker restarting) are retried as without the option, and once
// a first connection has succeeded the option has no effect: the client
// never gives up on a connection that once worked.
//
// Without WithFailFast the client retries every error until Close, and
// WaitConnected's error wraps both ctx's error and the last attempt's error.
func WithFailFast() Option {
	return optionFunc(func(c *cfg) { c.failFast = true })
}

// WithConnectionName sets the client's name (see Client.Name): the connection
// name shown by the broker's management tools, carried by every hook event and
// used as the "client" label by the metrics package. Default: "lavinmq-go-" and
// 8 random hex digits. Give each client its own; it must be valid UTF-8 and
// must not hold a secret.
func WithConnectionName(name string) Option {
	return optionFunc(func(c *cfg) { c.name = name })
}

// WithLogger sets the structured logger (default: discard). URLs are logged without their password.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *cfg) { c.logger = l })
}

// WithHooks registers values that implement one or more of the hook
// interfaces (HookConnected, HookDisconnected, HookReconnectAttempt,
// HookBlocked, HookTopologyError). Only the interfaces a value implements are called.
func WithHooks(hooks ...any) Option {
	return optionFunc(func(c *cfg) { c.hooks = append(c.hooks, hooks...) })
}
