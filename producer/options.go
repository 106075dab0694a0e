package producer

import (
	"fmt"
	"log/slog"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/buffer"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

// Defaults.
const (
	DefaultBufferSize     = 10_000
	DefaultMaxInFlight    = 1_000
	DefaultMaxMessageSize = 128 << 20 // RabbitMQ's default max_message_size
	DefaultRetryBudget    = 10
	DefaultReopenDelay    = 100 * time.Millisecond
	DefaultReopenMaxDelay = 5 * time.Second
	// DefaultPoisonBudget is how many times a message may be alone in
	// flight when the broker closes its channel or connection for a reason
	// that points at a message (see DropReason Invalid), with nothing acked
	// in between, before it is dropped with reason Invalid. After such a
	// loss the producer publishes one message at a time until the next ack,
	// so each strike names the message that caused it. Three lets a one-off
	// failure retry twice and stops a poison message after three channel
	// losses, paced by the reopen backoff.
	DefaultPoisonBudget = 3
)

type config struct {
	exchange, routingKey string
	routingSet           bool
	declare              bool
	declareArgs          amqp.Table
	mode                 Mode
	policy               buffer.Policy
	bufferSize           int
	bufferBytes          int64
	maxInFlight          int
	maxMessageSize       int
	retryBudget          int
	poisonBudget         int
	mandatory            bool
	reopenDelay          time.Duration
	reopenMaxDelay       time.Duration
	onDrop               func(Message, string, DropReason)
	hooks                []any
	logger               *slog.Logger
}

func defaultConfig() config {
	return config{
		mode:           Confirm,
		policy:         buffer.DropOldest,
		bufferSize:     DefaultBufferSize,
		bufferBytes:    DefaultBufferBytes,
		maxInFlight:    DefaultMaxInFlight,
		maxMessageSize: DefaultMaxMessageSize,
		retryBudget:    DefaultRetryBudget,
		poisonBudget:   DefaultPoisonBudget,
		mandatory:      true,
		reopenDelay:    DefaultReopenDelay,
		reopenMaxDelay: DefaultReopenMaxDelay,
		logger:         slog.New(slog.DiscardHandler),
	}
}

func (c *config) validate() error {
	switch {
	case c.mode != Confirm && c.mode != FireAndForget:
		return fmt.Errorf("%w: unknown mode %v", ErrInvalidConfig, c.mode)
	case !c.policy.Valid():
		return fmt.Errorf("%w: unknown buffer policy %v", ErrInvalidConfig, c.policy)
	case c.bufferSize < 1:
		return fmt.Errorf("%w: buffer size must be >= 1, got %d", ErrInvalidConfig, c.bufferSize)
	case c.bufferBytes < 1:
		return fmt.Errorf("%w: buffer bytes must be >= 1, got %d (math.MaxInt64 for no byte budget)", ErrInvalidConfig, c.bufferBytes)
	case c.maxInFlight < 1:
		return fmt.Errorf("%w: max in-flight must be >= 1, got %d", ErrInvalidConfig, c.maxInFlight)
	case c.maxMessageSize < 1:
		return fmt.Errorf("%w: max message size must be >= 1, got %d", ErrInvalidConfig, c.maxMessageSize)
	case c.retryBudget < 1:
		return fmt.Errorf("%w: retry budget must be >= 1, got %d", ErrInvalidConfig, c.retryBudget)
	case c.poisonBudget < 1:
		return fmt.Errorf("%w: poison budget must be >= 1, got %d", ErrInvalidConfig, c.poisonBudget)
	case len(c.exchange) > maxShortString:
		return fmt.Errorf("%w: exchange name of %d bytes, AMQP allows at most %d", ErrInvalidConfig, len(c.exchange), maxShortString)
	case len(c.routingKey) > maxShortString:
		return fmt.Errorf("%w: routing key of %d bytes, AMQP allows at most %d", ErrInvalidConfig, len(c.routingKey), maxShortString)
	case c.reopenDelay <= 0 || c.reopenMaxDelay < c.reopenDelay:
		return fmt.Errorf("%w: reopen delay must be > 0 and <= its max, got %v..%v", ErrInvalidConfig, c.reopenDelay, c.reopenMaxDelay)
	case c.logger == nil:
		return fmt.Errorf("%w: nil logger", ErrInvalidConfig)
	}
	if c.declare {
		// The checks DeclareQueue makes (the queue name is checked in New).
		if err := (lavinmq.Queue{Name: "q", Durable: true, Args: c.declareArgs}).Validate(); err != nil {
			return fmt.Errorf("%w: WithDeclare: %w", ErrInvalidConfig, err)
		}
	}
	for i, h := range c.hooks {
		if h == nil {
			return fmt.Errorf("%w: hook %d is nil", ErrInvalidConfig, i)
		}
		if !isHook(h) {
			return fmt.Errorf("%w: hook %d (%T) implements none of the producer's hook interfaces (HookProducerOpened, HookProducerClosed, HookConfirmed, HookWritten, HookDropped, HookResent, HookMessage)", ErrInvalidConfig, i, h)
		}
	}
	return nil
}

// Option configures a Producer; options are validated together in New.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithExchange publishes to exchange with routingKey instead of to the
// queue through the default exchange. The queue given to New still names
// the producer in logs and metrics (and is what WithDeclare declares).
func WithExchange(exchange, routingKey string) Option {
	return optionFunc(func(c *config) { c.exchange, c.routingKey, c.routingSet = exchange, routingKey, true })
}

// WithDeclare declares the queue (durable, with args; nil for none) through
// the client's recorded topology before the first publish, so it is declared
// again after every reconnect. By default the producer declares nothing.
func WithDeclare(args amqp.Table) Option {
	return optionFunc(func(c *config) { c.declare, c.declareArgs = true, args })
}

// WithMode selects Confirm (default) or FireAndForget.
func WithMode(m Mode) Option { return optionFunc(func(c *config) { c.mode = m }) }

// WithPolicy selects what Publish does when the buffer is full
// (default buffer.DropOldest).
func WithPolicy(p buffer.Policy) Option { return optionFunc(func(c *config) { c.policy = p }) }

// WithBufferSize sets the buffer capacity in messages (default 10_000),
// allocated once in New.
func WithBufferSize(n int) Option { return optionFunc(func(c *config) { c.bufferSize = n }) }

// WithBufferBytes sets the byte budget for the messages the producer holds,
// buffered and in flight (taken from the buffer and not yet confirmed, or
// waiting to be re-sent after a lost channel) together: default
// DefaultBufferBytes, 16 MiB (see it for why). A message counts its body, its routing key and
// string properties, and its headers as encoded (keys and values).
//
// The policy applies when either limit would be passed, the count
// (WithBufferSize) or the bytes: buffer.DropOldest evicts buffered messages,
// oldest first, each reported with reason Evicted, until the new one fits;
// buffer.Raise returns an error wrapping ErrBytesFull (which wraps
// buffer.ErrFull); buffer.Block waits until enough bytes settle, bounded by
// ctx. A message larger than the whole budget is refused with ErrTooLarge.
// Under DropOldest the publisher takes messages from the buffer only while
// it holds less than half the budget, so that the rest is left to evict
// from: when every message is at most a quarter of the budget, a Publish
// always finds room (except while other Publish calls hold reservations for
// messages they are pushing at that instant); otherwise a Publish for which
// evicting every buffered message is not enough gets ErrBytesFull (the
// messages on the wire cannot be taken back).
//
// n must be at least 1: 0 or a negative value is refused in New with
// ErrInvalidConfig rather than read as "no budget", since an unset setting
// read as 0 would silently remove the protection this option exists for.
// For no byte budget, pass math.MaxInt64.
func WithBufferBytes(n int64) Option { return optionFunc(func(c *config) { c.bufferBytes = n }) }

// WithMaxInFlight bounds the unconfirmed messages on the wire in Confirm
// mode (default 1_000).
func WithMaxInFlight(n int) Option { return optionFunc(func(c *config) { c.maxInFlight = n }) }

// WithMaxMessageSize makes Publish refuse bodies over n bytes with
// ErrTooLarge (default 128 MiB, RabbitMQ's default max_message_size).
func WithMaxMessageSize(n int) Option { return optionFunc(func(c *config) { c.maxMessageSize = n }) }

// WithRetryBudget sets how many nacks a message may get, across channels,
// before it is reported with reason Nacked (default 10).
func WithRetryBudget(n int) Option { return optionFunc(func(c *config) { c.retryBudget = n }) }

// WithMandatory sets the mandatory flag (default true in Confirm mode, so an
// unroutable message is reported as Unroutable). FireAndForget never sets it.
func WithMandatory(on bool) Option { return optionFunc(func(c *config) { c.mandatory = on }) }

// WithPoisonBudget sets how many times in a row a message may be the first
// unconfirmed one when the broker closes its channel or connection for a
// reason that points at a message, before it is dropped with reason Invalid
// (default DefaultPoisonBudget, 3).
func WithPoisonBudget(n int) Option { return optionFunc(func(c *config) { c.poisonBudget = n }) }

// WithReopenDelay sets the backoff for reopening a channel the broker closed
// (default 100ms growing to 5s, with jitter).
func WithReopenDelay(initial, max time.Duration) Option {
	return optionFunc(func(c *config) { c.reopenDelay, c.reopenMaxDelay = initial, max })
}

// OnDrop sets the callback told about every accepted message that is given
// up, with the reason. It must return quickly.
func OnDrop(f func(m Message, queue string, reason DropReason)) Option {
	return optionFunc(func(c *config) { c.onDrop = f })
}

// WithHooks adds hook values (see HookProducerOpened and the others, and
// HookMessage, which tracing.Tracer implements); a value may implement any
// subset of the hook interfaces.
func WithHooks(hooks ...any) Option {
	return optionFunc(func(c *config) { c.hooks = append(c.hooks, hooks...) })
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return optionFunc(func(c *config) { c.logger = l }) }
