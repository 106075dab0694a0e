package consumer

import (
	"context"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Action is what the consumer does with a delivery once the handler returns.
type Action uint8

const (
	// Ack acknowledges the delivery: the broker forgets the message.
	Ack Action = iota
	// NackRequeue rejects the delivery and asks the broker to deliver it again.
	NackRequeue
	// NackDiscard rejects the delivery without requeue: the broker drops it,
	// or dead-letters it if the queue has a dead-letter exchange.
	NackDiscard
)

// String returns "ack", "nack_requeue" or "nack_discard" (usable as a metric label).
func (a Action) String() string {
	switch a {
	case Ack:
		return "ack"
	case NackRequeue:
		return "nack_requeue"
	case NackDiscard:
		return "nack_discard"
	}
	return "unknown"
}

// Delivery is one message given to a Handler. It is a plain value: the
// consumer applies the Action the handler returns, so there is no Ack method
// to call (or to call twice, or on the wrong channel).
type Delivery struct {
	Queue       string // the queue consumed from
	Exchange    string // the exchange the message was published to
	RoutingKey  string
	ConsumerTag string
	DeliveryTag uint64 // valid only on the channel the message came on
	Redelivered bool   // the broker delivered this message before (to this or another consumer)

	Body    []byte
	Headers amqp.Table

	ContentType     string
	ContentEncoding string
	MessageID       string
	CorrelationID   string
	ReplyTo         string
	Type            string
	AppID           string
	Expiration      string
	DeliveryMode    uint8 // 1 transient, 2 persistent
	Priority        uint8
	Timestamp       time.Time

	// StreamOffset is the offset of the message in a stream queue (its
	// x-stream-offset header), or -1 when the queue is not a stream.
	StreamOffset int64
}

// Handler processes one delivery and says what to do with it. Its ctx is
// derived from Run's ctx and is also cancelled when the delivery's channel is
// gone (a lost connection, a channel error: its Action cannot be sent any more
// and the broker redelivers the message) and when the ctx of a Close ends, so
// a long handler can stop early; its Action is then dropped as stale, or
// applied if the channel is still live. A panic is recovered and turns into NackRequeue (or
// NackDiscard, see WithRequeueOnPanic). An Action other than the three
// defined ones is treated as NackRequeue.
type Handler func(ctx context.Context, d Delivery) Action

func newDelivery(queue string, d *amqp.Delivery) Delivery {
	return Delivery{
		Queue:           queue,
		Exchange:        d.Exchange,
		RoutingKey:      d.RoutingKey,
		ConsumerTag:     d.ConsumerTag,
		DeliveryTag:     d.DeliveryTag,
		Redelivered:     d.Redelivered,
		Body:            d.Body,
		Headers:         d.Headers,
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		MessageID:       d.MessageId,
		CorrelationID:   d.CorrelationId,
		ReplyTo:         d.ReplyTo,
		Type:            d.Type,
		AppID:           d.AppId,
		Expiration:      d.Expiration,
		DeliveryMode:    d.DeliveryMode,
		Priority:        d.Priority,
		Timestamp:       d.Timestamp,
		StreamOffset:    streamOffsetOf(d.Headers),
	}
}
