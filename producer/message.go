package producer

import (
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Delivery modes for Message.DeliveryMode (0 means the mode's default:
// Persistent in Confirm mode, Transient in FireAndForget).
const (
	Transient  uint8 = amqp.Transient
	Persistent uint8 = amqp.Persistent
)

// Message is one message to publish: a body, the AMQP properties and,
// optionally, its own routing key.
type Message struct {
	// RoutingKey, when set, is this message's routing key on the producer's
	// exchange (WithExchange; on the default exchange of a queue producer it
	// names the queue to deliver to, as given: it is not mapped through
	// Client.QueueName). Empty: the producer's key. At most 255 bytes. OnDrop shows the key the message was (or would have been)
	// published with.
	RoutingKey      string
	Body            []byte
	Headers         amqp.Table
	ContentType     string
	ContentEncoding string
	// MessageID identifies the message. When empty, the producer gives it a
	// stable one, "<producer prefix>-<n>", fixed when Publish accepts it: it
	// is sent in Confirm mode (the same on every re-send, so consumers can
	// de-duplicate) and shown to OnDrop. FireAndForget never re-sends, so it
	// does not spend the bytes on the wire. With mandatory on (the Confirm
	// default), messages that share an ID are never in flight together: the
	// broker's basic.return names a message only by its properties, so one
	// waits until the other settles (a round trip), and an unroutable message
	// is reported as exactly itself.
	MessageID     string
	CorrelationID string
	ReplyTo       string
	DeliveryMode  uint8  // 0: the mode's default; Transient (1) or Persistent (2)
	Expiration    string // per-message TTL in milliseconds, as AMQP wants it: "60000"
	Priority      uint8  // 0-9 for priority queues
	Timestamp     time.Time
	Type          string
	AppID         string
	// UserID is the AMQP user-id property. RabbitMQ checks it against the
	// connection's user and closes the channel when they differ; such a
	// message is dropped with reason Invalid after the poison budget.
	UserID string
}

// envelope is what the ring holds: the message and the producer's bookkeeping.
type envelope struct {
	msg      Message
	at       int64   // nanoseconds since the producer's epoch, when accepted
	seq      uint64  // accept order, 1-based: the generated message ID
	size     int64   // what it counts against the byte budget (messageSize)
	attempts uint16  // nacks so far
	resent   bool    // published at least once before
	taken    bool    // taken from the ring by the publisher: counted in budget.taken
	epoch    uint8   // parity of the flush epoch it was accepted in (see flusher)
	waiter   *waiter // PublishSync's, told when the message settles; nil for Publish
	trace    any     // the HookMessage handle (see msghook.go); nil without a HookMessage
}

func (m *Message) publishing(defaultMode uint8) amqp.Publishing {
	mode := m.DeliveryMode
	if mode == 0 {
		mode = defaultMode
	}
	return amqp.Publishing{
		Headers:         m.Headers,
		ContentType:     m.ContentType,
		ContentEncoding: m.ContentEncoding,
		DeliveryMode:    mode,
		Priority:        m.Priority,
		CorrelationId:   m.CorrelationID,
		ReplyTo:         m.ReplyTo,
		Expiration:      m.Expiration,
		MessageId:       m.MessageID,
		Timestamp:       m.Timestamp,
		Type:            m.Type,
		AppId:           m.AppID,
		UserId:          m.UserID,
		Body:            m.Body,
	}
}
