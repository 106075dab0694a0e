// Package tracing gives every message an OpenTelemetry trace, from Publish to
// the consumer's handler, through reconnects: a plugin, like metrics, so the
// core packages do not import OpenTelemetry.
//
//	tp := sdktrace.NewTracerProvider(...)
//	t, err := tracing.New(tracing.WithTracerProvider(tp), tracing.WithPropagator(propagation.TraceContext{}))
//	p, err := producer.New(client, "orders", producer.WithHooks(t))
//	k, err := consumer.New(client, "orders", consumer.WithHooks(t))
//
// Producer: Publish starts a PRODUCER span "publish {destination}", a child of
// the span in Publish's ctx, and writes its context into the message's headers
// (traceparent, tracestate) once, in a copy of the caller's table, so every
// re-send carries the same context. The span ends when the message settles:
// status Ok when the broker confirmed it, Error with error.type set to the
// drop reason (evicted, nacked, unroutable, too_large, shutdown, invalid)
// when it was dropped. Its events tell the message's story: "sent" (with the
// time it waited in the buffer, lavinmq.since_accepted_ms), "re-sent after
// reconnect" or "re-sent on a new channel" (with lavinmq.since_last_send_ms,
// the outage), "nacked". A message whose properties leave no room for the
// headers is published without them (the producer logs it once) and its span
// gets a "trace context not injected" event.
//
// Consumer: each handler call runs in a CONSUMER span "process
// {destination}", a child of the producer span carried by the message and
// linked to it (WithConsumerLinkOnly: linked only); the handler's ctx carries
// it, so the handler's own spans nest under it. The Action (lavinmq.action)
// and a recovered panic (an exception event, status Error, error.type panic)
// are recorded.
//
// Attributes follow the OpenTelemetry semantic conventions for messaging and
// RabbitMQ, semconv v1.43.0: messaging.system=rabbitmq,
// messaging.operation.type (send, process), messaging.operation.name
// (publish, process), messaging.destination.name ({exchange}:{routing key},
// or amq.default, on a send; {exchange}:{routing key}:{queue} on a delivery,
// empty parts and a routing key equal to the queue left out),
// messaging.rabbitmq.destination.routing_key,
// messaging.rabbitmq.message.delivery_tag, messaging.message.id,
// messaging.message.conversation_id (the correlation ID),
// messaging.client.id (the client's Name), server.address and server.port
// (from the client's URL, never its credentials), error.type.
package tracing
