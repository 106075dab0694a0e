package consumer

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v5"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

// Defaults of the options.
const (
	DefaultPrefetch          = 100
	DefaultConcurrency       = 1
	DefaultTagPrefix         = "lavinmq-go"
	DefaultRetryInitialDelay = 100 * time.Millisecond
	DefaultRetryMaxDelay     = 5 * time.Second
	DefaultRetryJitter       = 0.5 // each delay is drawn from [d*(1-j), d*(1+j)]
)

// cfg holds every setting of a Consumer. Defaults live in defaultConfig; New
// applies the options and then validates the whole config once.
type cfg struct {
	prefetch       int
	concurrency    int
	tagPrefix      string
	declare        bool
	declareArgs    amqp.Table
	requeueOnPanic bool
	retryInitial   time.Duration
	retryMax       time.Duration
	logger         *slog.Logger
	hooks          []any

	maxRedeliveries    int           // 0: no limit
	requeueDelay       time.Duration // first delay before a requeue; doubles per failure
	requeueDelayMax    time.Duration
	streamOffset       any // set by WithStreamOffset (streamSet)
	streamSet          bool
	maxRedeliveriesSet bool
	priority           *int32
	exclusive          bool
	consumeArgs        amqp.Table
	ackBatchN          int           // WithAckBatch's n (ackBatch caps it)
	ackDelay           time.Duration // WithAckBatch's maxDelay
}

func defaultConfig() cfg {
	return cfg{
		prefetch:       DefaultPrefetch,
		concurrency:    DefaultConcurrency,
		tagPrefix:      DefaultTagPrefix,
		requeueOnPanic: true,
		retryInitial:   DefaultRetryInitialDelay,
		retryMax:       DefaultRetryMaxDelay,
		logger:         slog.New(slog.DiscardHandler),

		maxRedeliveries: DefaultMaxRedeliveries,
		requeueDelay:    DefaultRequeueDelay,
		requeueDelayMax: DefaultRequeueDelayMax,
		ackBatchN:       DefaultAckBatch,
		ackDelay:        DefaultAckDelay,
	}
}

func (c *cfg) validate() error {
	switch {
	case c.prefetch < 1:
		return fmt.Errorf("%w: prefetch must be >= 1, got %d", ErrInvalidConfig, c.prefetch)
	case c.prefetch > 65535:
		return fmt.Errorf("%w: prefetch must be <= 65535 (AMQP short), got %d", ErrInvalidConfig, c.prefetch)
	case c.concurrency < 1:
		return fmt.Errorf("%w: concurrency must be >= 1, got %d", ErrInvalidConfig, c.concurrency)
	case c.tagPrefix == "":
		return fmt.Errorf("%w: empty consumer tag prefix", ErrInvalidConfig)
	case len(c.tagPrefix) > 200:
		return fmt.Errorf("%w: consumer tag prefix longer than 200 bytes", ErrInvalidConfig)
	case c.retryInitial <= 0:
		return fmt.Errorf("%w: retry initial delay must be > 0, got %v", ErrInvalidConfig, c.retryInitial)
	case c.retryMax < c.retryInitial:
		return fmt.Errorf("%w: retry max delay %v is below the initial delay %v", ErrInvalidConfig, c.retryMax, c.retryInitial)
	case c.logger == nil:
		return fmt.Errorf("%w: nil logger", ErrInvalidConfig)
	}
	// The checks DeclareQueue makes (the queue name is checked in New).
	if err := (lavinmq.Queue{Name: "q", Durable: true, Args: c.declareArgs}).Validate(); err != nil {
		return fmt.Errorf("%w: WithDeclare: %w", ErrInvalidConfig, err)
	}
	if err := c.validateExtra(); err != nil {
		return err
	}
	if err := c.validateAcks(); err != nil {
		return err
	}
	for i, h := range c.hooks {
		if h == nil {
			return fmt.Errorf("%w: hook %d is nil", ErrInvalidConfig, i)
		}
		if !isHook(h) {
			return fmt.Errorf("%w: hook %d (%T) implements none of the consumer's hook interfaces (HookDelivered, HookHandled, HookPanic, HookStaleAck, HookResubscribed, HookDiscarded, HookSubscribeFailed, HookHandle)", ErrInvalidConfig, i, h)
		}
	}
	return nil
}

// workers is the number of handler goroutines: more than prefetch would never
// all be busy on one channel, and capping them at prefetch keeps the handlers
// running at once within prefetch even while stale handlers of a lost channel
// are still finishing next to those of the new one.
func (c *cfg) workers() int { return min(c.concurrency, c.prefetch) }

// newBackoff returns the resubscribe delay policy: exponential with jitter.
func (c *cfg) newBackoff() *backoff.ExponentialBackOff {
	return &backoff.ExponentialBackOff{
		InitialInterval:     c.retryInitial,
		RandomizationFactor: DefaultRetryJitter,
		Multiplier:          2,
		MaxInterval:         c.retryMax,
	}
}

// Option configures a Consumer. Options are validated together in New.
type Option interface{ apply(*cfg) }

type optionFunc func(*cfg)

func (f optionFunc) apply(c *cfg) { f(c) }

// WithPrefetch sets the QoS prefetch count: how many unacknowledged messages
// the broker sends ahead (default 100, at least 1). It is applied again on
// every new channel.
func WithPrefetch(n int) Option { return optionFunc(func(c *cfg) { c.prefetch = n }) }

// WithConcurrency sets how many handlers run at once (default 1, at least 1).
// It is capped at the prefetch count, which bounds the messages a channel has
// in flight.
func WithConcurrency(n int) Option { return optionFunc(func(c *cfg) { c.concurrency = n }) }

// WithTagPrefix sets the prefix of the consumer tags, which are
// prefix-<random>-<n> (default "lavinmq-go"). The tag shows in the broker's
// management tools.
func WithTagPrefix(s string) Option { return optionFunc(func(c *cfg) { c.tagPrefix = s }) }

// WithDeclare makes the consumer declare its queue (durable, with args; nil
// for none) through the Client, so that it is recorded and declared again
// after every reconnect, and again when the broker cancels the subscription
// (for example because the queue was deleted). By default nothing is declared
// and a missing queue is waited for.
func WithDeclare(args amqp.Table) Option {
	return optionFunc(func(c *cfg) { c.declare, c.declareArgs = true, args })
}

// WithRequeueOnPanic chooses what a panicking handler's delivery gets:
// NackRequeue (true, the default) or NackDiscard (false).
func WithRequeueOnPanic(b bool) Option { return optionFunc(func(c *cfg) { c.requeueOnPanic = b }) }

// WithRetryDelay sets the first delay between failed subscribe attempts and
// the cap that exponential growth (with jitter) stops at (defaults 100ms and 5s).
// The delay starts over after each successful subscription.
func WithRetryDelay(initial, max time.Duration) Option {
	return optionFunc(func(c *cfg) { c.retryInitial, c.retryMax = initial, max })
}

// WithHooks registers values that implement one or more of the hook
// interfaces (HookDelivered, HookHandled, HookPanic, HookStaleAck,
// HookResubscribed, HookDiscarded, HookSubscribeFailed, HookHandle, which
// tracing.Tracer implements). Only the interfaces a value implements are called.
func WithHooks(hooks ...any) Option {
	return optionFunc(func(c *cfg) { c.hooks = append(c.hooks, hooks...) })
}

// WithLogger sets the structured logger (default: discard).
func WithLogger(l *slog.Logger) Option { return optionFunc(func(c *cfg) { c.logger = l }) }
