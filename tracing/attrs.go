package tracing

import (
	"net"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// The spans follow the OpenTelemetry semantic conventions for messaging and
// RabbitMQ of semconv v1.43.0 (go.opentelemetry.io/otel/semconv/v1.43.0, the
// version otel v1.47.0 ships): the constants of that package where they
// exist, and the keys below, under "lavinmq.", for what the conventions do
// not name.
const (
	// Operation names (messaging.operation.name): the AMQP method for a
	// send, "process" for a handler call.
	OperationPublish = "publish"
	OperationProcess = "process"

	// Producer span attributes.
	AttrSends = attribute.Key("lavinmq.sends") // times the message was written on a channel; set when > 1, or dropped
	AttrMode  = attribute.Key("lavinmq.mode")  // confirm or fire_and_forget
	// Producer event attributes.
	AttrConnection    = attribute.Key("lavinmq.connection")         // the connection's generation (1, 2 after a reconnect...)
	AttrSinceAccepted = attribute.Key("lavinmq.since_accepted_ms")  // ms from Publish to this event: time buffered, for "sent"
	AttrSinceLastSend = attribute.Key("lavinmq.since_last_send_ms") // ms since the previous write, on a re-send: the outage
	AttrNacks         = attribute.Key("lavinmq.nacks")              // nacks so far, on "nacked"
	AttrReason        = attribute.Key("lavinmq.reason")             // why trace context was not injected
	// Consumer span attributes.
	AttrAction      = attribute.Key("lavinmq.action")      // ack, nack_requeue or nack_discard
	AttrRedelivered = attribute.Key("lavinmq.redelivered") // the broker delivered the message before

	// Event names on producer spans.
	EventSent               = "sent"
	EventResentReconnect    = "re-sent after reconnect"
	EventResentChannel      = "re-sent on a new channel"
	EventNacked             = "nacked"
	EventHeadersNotInjected = "trace context not injected"

	// Values of error.type besides the DropReason names (evicted, nacked,
	// unroutable, too_large, shutdown, invalid).
	ErrorNotAccepted = "not_accepted" // Publish returned an error: never buffered
	ErrorPanic       = "panic"        // the handler panicked
)

// sendDestination is messaging.destination.name of a send: {exchange}:{routing
// key}, the empty part left out, or amq.default when both are empty.
func sendDestination(exchange, key string) string {
	switch {
	case exchange != "" && key != "":
		return exchange + ":" + key
	case exchange != "":
		return exchange
	case key != "":
		return key
	}
	return "amq.default"
}

// consumeDestination is messaging.destination.name of a delivery:
// {exchange}:{routing key}:{queue}, the empty parts left out, and the routing
// key once when it equals the queue's name.
func consumeDestination(exchange, key, queue string) string {
	if key == queue {
		key = ""
	}
	s := ""
	for _, part := range [...]string{exchange, key, queue} {
		if part == "" {
			continue
		}
		if s != "" {
			s += ":"
		}
		s += part
	}
	if s == "" {
		return "amq.default"
	}
	return s
}

// messageAttrs appends the attributes producer and consumer spans share, each
// only when it has a value: the routing key, message and correlation IDs, the
// client's name, and the server's address and port.
func messageAttrs(out []attribute.KeyValue, routingKey, messageID, correlationID, client, endpoint string) []attribute.KeyValue {
	if routingKey != "" {
		out = append(out, semconv.MessagingRabbitMQDestinationRoutingKey(routingKey))
	}
	if messageID != "" {
		out = append(out, semconv.MessagingMessageID(messageID))
	}
	if correlationID != "" {
		out = append(out, semconv.MessagingMessageConversationID(correlationID))
	}
	if client != "" {
		out = append(out, semconv.MessagingClientID(client))
	}
	return serverAttrs(endpoint, out)
}

// serverAttrs are server.address and server.port of a host:port endpoint
// (the port left out when it has none). An endpoint never holds credentials.
func serverAttrs(endpoint string, out []attribute.KeyValue) []attribute.KeyValue {
	if endpoint == "" {
		return out
	}
	host, port, err := net.SplitHostPort(endpoint)
	if err != nil {
		return append(out, semconv.ServerAddress(endpoint))
	}
	out = append(out, semconv.ServerAddress(host))
	if n, err := strconv.Atoi(port); err == nil {
		out = append(out, semconv.ServerPort(n))
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
