package tracing

import (
	"errors"
	"fmt"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

// ScopeName is the instrumentation scope of the spans: the tracer's name.
const ScopeName = "github.com/c3ecadf2/lavinmq-go/tracing"

// ErrInvalidConfig is wrapped by the error of New for a bad option.
var ErrInvalidConfig = errors.New("tracing: invalid config")

// Tracer makes the spans of the messages of the producers and consumers it is
// given to (producer.WithHooks(t), consumer.WithHooks(t)). It implements
// producer.HookMessage and consumer.HookHandle, holds no per-producer state,
// and is safe for concurrent use: one Tracer may serve every producer and
// consumer of a process.
type Tracer struct {
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator
	linkOnly bool
}

var (
	_ producer.HookMessage = (*Tracer)(nil)
	_ consumer.HookHandle  = (*Tracer)(nil)
)

type cfg struct {
	tp             trace.TracerProvider
	prop           propagation.TextMapPropagator
	tpSet, propSet bool
	linkOnly       bool
}

// Option configures a Tracer; options are validated together in New.
type Option interface{ apply(*cfg) }

type optionFunc func(*cfg)

func (f optionFunc) apply(c *cfg) { f(c) }

// WithTracerProvider sets the provider of the tracer (default: the global
// one, otel.GetTracerProvider, which follows a later otel.SetTracerProvider).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(c *cfg) { c.tp, c.tpSet = tp, true })
}

// WithPropagator sets how trace context is written into message headers and
// read back (default: the global one, otel.GetTextMapPropagator). The global
// propagator writes nothing until otel.SetTextMapPropagator is called: give
// propagation.TraceContext{} (W3C traceparent and tracestate), or a composite
// with propagation.Baggage{}, unless the application sets the global one.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return optionFunc(func(c *cfg) { c.prop, c.propSet = p, true })
}

// WithConsumerLinkOnly makes each consumer span a new trace (or a child of the
// span in Run's ctx) that links to the message's producer span, instead of
// its child (the default). Use it where a message may wait long in a queue,
// so that a trace does not stretch over hours, or where one message is
// consumed by many consumers.
func WithConsumerLinkOnly() Option {
	return optionFunc(func(c *cfg) { c.linkOnly = true })
}

// New returns a Tracer. It never touches the network.
func New(opts ...Option) (*Tracer, error) {
	c := cfg{}
	for i, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("%w: option %d is nil", ErrInvalidConfig, i)
		}
		o.apply(&c)
	}
	switch {
	case c.tpSet && c.tp == nil:
		return nil, fmt.Errorf("%w: nil tracer provider (leave WithTracerProvider out for the global one)", ErrInvalidConfig)
	case c.propSet && c.prop == nil:
		return nil, fmt.Errorf("%w: nil propagator (leave WithPropagator out for the global one)", ErrInvalidConfig)
	}
	if c.tp == nil {
		c.tp = otel.GetTracerProvider()
	}
	if c.prop == nil {
		c.prop = otel.GetTextMapPropagator()
	}
	return &Tracer{
		tracer:   c.tp.Tracer(ScopeName, trace.WithSchemaURL(semconv.SchemaURL)),
		prop:     c.prop,
		linkOnly: c.linkOnly,
	}, nil
}
