package tracing

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/c3ecadf2/lavinmq-go/consumer"
)

// OnHandle starts the CONSUMER span of one handler call, "process
// {destination}", and returns the handler's ctx carrying it, so the spans the
// handler starts nest under it.
//
// Parent and link: the span is a child of the context extracted from the
// message's headers (the producer span), so that Publish and the handler are
// one trace, and it also links to that context, as semconv v1.43.0 asks of a
// "process" span for each message it accounts for (a link is what tools that
// follow the messaging conventions look for; the parent is what keeps one
// message's story in one trace). With WithConsumerLinkOnly it only links, and
// its parent is the span in Run's ctx, if any. A message without trace context
// gets a span with Run's ctx's span as parent. Baggage in the headers is put in
// the handler's ctx either way.
func (t *Tracer) OnHandle(ctx context.Context, ev consumer.HandleEvent) (context.Context, func(consumer.Action, any)) {
	if t == nil || t.tracer == nil {
		return ctx, nil // not made by New
	}
	d := &ev.Delivery
	dest := consumeDestination(d.Exchange, d.RoutingKey, d.Queue)
	attrs := make([]attribute.KeyValue, 0, 12)
	attrs = append(attrs,
		semconv.MessagingSystemRabbitMQ,
		semconv.MessagingOperationTypeProcess,
		semconv.MessagingOperationName(OperationProcess),
		semconv.MessagingDestinationName(dest),
		semconv.MessagingRabbitMQMessageDeliveryTag(int(d.DeliveryTag)),
	)
	attrs = messageAttrs(attrs, d.RoutingKey, d.MessageID, d.CorrelationID, ev.Client, ev.Endpoint)
	if d.Redelivered {
		attrs = append(attrs, AttrRedelivered.Bool(true))
	}
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...)}
	parent := ctx
	if d.Headers != nil {
		carried := t.prop.Extract(context.Background(), tableCarrier(d.Headers))
		if sc := trace.SpanContextFromContext(carried); sc.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
			if !t.linkOnly {
				parent = trace.ContextWithRemoteSpanContext(parent, sc)
			}
		}
		if b := baggage.FromContext(carried); b.Len() > 0 {
			parent = baggage.ContextWithBaggage(parent, b)
		}
	}
	hctx, span := t.tracer.Start(parent, OperationProcess+" "+dest, opts...)
	if !span.IsRecording() {
		return hctx, nil // sampled out: the handler's ctx carries the context, nothing is recorded
	}
	return hctx, func(a consumer.Action, panicked any) {
		if panicked == nil {
			span.SetAttributes(AttrAction.String(a.String()))
		} else {
			err := fmt.Errorf("handler panicked: %v", panicked)
			span.RecordError(err)
			span.SetAttributes(AttrAction.String(a.String()), semconv.ErrorTypeKey.String(ErrorPanic))
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
}
