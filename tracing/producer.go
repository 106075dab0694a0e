package tracing

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/c3ecadf2/lavinmq-go/producer"
)

// msgSpan is the handle of one message: its PRODUCER span, from Publish to
// settlement. Publish's goroutine creates it; after the ring hands the
// message over, one goroutine at a time uses it (the publisher, or the one
// that drops the message), so it needs no lock.
type msgSpan struct {
	span     trace.Span
	start    time.Time
	lastSend time.Time
	sends    int
	conn     uint64
	endpoint string
	confirm  bool
}

// OnMessagePublish starts the message's PRODUCER span, a child of the span in
// ctx, named "publish {destination}", and writes its context into the
// message's headers (W3C traceparent and tracestate with the default
// propagators) in a copy of the caller's table: the caller's own map is never
// written. The headers are set once, here, so the first publish and every
// re-send carry the same context. When the caller's headers already hold a
// trace context (a custom creation context, say a message forwarded with its
// original headers), it is kept as it is and the span links to it, as the
// messaging conventions ask.
func (t *Tracer) OnMessagePublish(ctx context.Context, ev producer.MessagePublishEvent, m *producer.Message) any {
	if t == nil || t.tracer == nil {
		return nil // not made by New
	}
	dest := sendDestination(ev.Exchange, ev.RoutingKey)
	attrs := make([]attribute.KeyValue, 0, 12)
	attrs = append(attrs,
		semconv.MessagingSystemRabbitMQ,
		semconv.MessagingOperationTypeSend,
		semconv.MessagingOperationName(OperationPublish),
		semconv.MessagingDestinationName(dest),
	)
	attrs = messageAttrs(attrs, ev.RoutingKey, ev.MessageID, m.CorrelationID, ev.Client, ev.Endpoint)
	attrs = append(attrs, AttrMode.String(ev.Mode.String()))
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...)}
	var custom trace.SpanContext
	if m.Headers != nil {
		custom = trace.SpanContextFromContext(t.prop.Extract(context.Background(), tableCarrier(m.Headers)))
		if custom.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: custom}))
		}
	}
	ctx, span := t.tracer.Start(ctx, OperationPublish+" "+dest, opts...)
	if !custom.IsValid() {
		c := headerCarrier{src: m.Headers}
		t.prop.Inject(ctx, &c)
		if c.out != nil {
			m.Headers = c.out
		}
	}
	if !span.IsRecording() {
		return nil // sampled out: the context is propagated, nothing is recorded
	}
	return &msgSpan{span: span, start: time.Now(), endpoint: ev.Endpoint, confirm: ev.Mode == producer.Confirm}
}

// OnMessageHeadersRefused records that the message goes out without trace
// context (its properties had no room left for it).
func (t *Tracer) OnMessageHeadersRefused(handle any, err error) {
	if s, ok := handle.(*msgSpan); ok {
		s.span.AddEvent(EventHeadersNotInjected, trace.WithAttributes(AttrReason.String(err.Error())))
	}
}

// OnMessageSent adds an event per write: "sent" for the first, with the time
// the message waited in the buffer, then "re-sent after reconnect" (on a
// later connection) or "re-sent on a new channel" (after a nack or a channel
// error), with the time since the previous write. server.address and
// server.port follow the connection (the last contacted node, after a failover).
func (t *Tracer) OnMessageSent(handle any, ev producer.MessageSentEvent) {
	s, ok := handle.(*msgSpan)
	if !ok {
		return
	}
	now := time.Now()
	s.sends++
	attrs := []attribute.KeyValue{
		AttrConnection.Int64(int64(ev.Connection)),
		AttrSinceAccepted.Float64(ms(now.Sub(s.start))),
	}
	name := EventSent
	if s.sends > 1 || ev.Resent {
		name = EventResentChannel
		if ev.Connection != s.conn {
			name = EventResentReconnect
		}
		if !s.lastSend.IsZero() {
			attrs = append(attrs, AttrSinceLastSend.Float64(ms(now.Sub(s.lastSend))))
		}
	}
	s.span.AddEvent(name, trace.WithTimestamp(now), trace.WithAttributes(attrs...))
	s.lastSend, s.conn = now, ev.Connection
	if ev.Endpoint != "" && ev.Endpoint != s.endpoint {
		s.endpoint = ev.Endpoint
		s.span.SetAttributes(serverAttrs(ev.Endpoint, nil)...)
	}
}

// OnMessageNacked adds a "nacked" event with the number of nacks so far.
func (t *Tracer) OnMessageNacked(handle any, attempt int) {
	if s, ok := handle.(*msgSpan); ok {
		s.span.AddEvent(EventNacked, trace.WithAttributes(AttrNacks.Int(attempt)))
	}
}

// OnMessageSettled ends the span: status Ok when the broker confirmed the
// message (Unset for a FireAndForget write, which nobody confirms); status
// Error with error.type set to the drop reason (evicted, nacked, unroutable,
// too_large, shutdown, invalid) or not_accepted, and the error as the
// description, otherwise. lavinmq.sends is set on a message written more
// than once, and on a dropped one. Attributes are added in at most one call:
// each call grows the span's attribute slice.
func (t *Tracer) OnMessageSettled(handle any, ev producer.MessageSettledEvent) {
	s, ok := handle.(*msgSpan)
	if !ok {
		return
	}
	sp := s.span
	switch {
	case !ev.Accepted:
		sp.SetAttributes(semconv.ErrorTypeKey.String(ErrorNotAccepted))
		sp.SetStatus(codes.Error, errText(ev.Err))
	case ev.Reason != 0:
		sp.SetAttributes(semconv.ErrorTypeKey.String(ev.Reason.String()), AttrSends.Int(s.sends))
		sp.SetStatus(codes.Error, errText(ev.Err))
	default:
		if s.sends > 1 {
			sp.SetAttributes(AttrSends.Int(s.sends))
		}
		if s.confirm {
			sp.SetStatus(codes.Ok, "")
		}
	}
	sp.End()
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
