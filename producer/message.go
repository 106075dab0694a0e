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

// Message is one message to publish: a body and the AMQP properties.
type Message struct {
	Body            []byte
	Headers         amqp.Table
	ContentType     string
	ContentEncoding string
	// MessageID identifies the message; when empty, in Confirm mode, the
	// producer gives it a stable one the first time it is published, kept
	// across re-sends, so consumers can de-duplicate. (FireAndForget never
	// re-sends, so it leaves an empty MessageID empty.)
	MessageID     string
	CorrelationID string
	ReplyTo       string
	DeliveryMode  uint8  // 0: the mode's default; Transient (1) or Persistent (2)
	Expiration    string // per-message TTL in milliseconds, as AMQP wants it: "60000"
	Priority      uint8  // 0-9 for priority queues
	Timestamp     time.Time
	Type          string
	AppID         string
}

// envelope is what the ring holds: the message and the producer's bookkeeping.
type envelope struct {
	msg      Message
	at       int64  // nanoseconds since the producer's epoch, when accepted
	attempts uint16 // nacks and refusals so far
	resent   bool   // published at least once before
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
		Body:            m.Body,
	}
}
