package producer

import (
	"fmt"
	"math"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// maxShortString is the longest AMQP short string (a length byte, then the
// bytes): message properties, header keys, exchange names and routing keys.
// amqp091-go fails the whole frame write for a longer one, which closes the
// connection.
const maxShortString = 255

// maxPropertiesSize bounds the encoded properties (header table and short
// strings) of one message. They travel in one content-header frame, which
// must fit in the negotiated frame_max (RabbitMQ and LavinMQ default to
// 131072 bytes, amqp091-go asks for the same): a larger header frame makes the
// broker close the connection. 4 KiB are kept for the frame header and the
// fixed-size properties.
const maxPropertiesSize = 131072 - 4096

// validate checks everything amqp091-go and the broker need to accept m
// without closing the channel or the connection, and returns the size m
// counts against the byte budget (messageSize), which it must fit in. It
// allocates only to build an error.
func (p *Producer) validate(m *Message) (int64, error) {
	size, err := p.check(m)
	if err != nil {
		return 0, err
	}
	if size > p.bud.limit {
		return 0, fmt.Errorf("%w: message of %d bytes (body, headers and properties), more than the whole byte budget of %d (WithBufferBytes)", ErrTooLarge, size, p.bud.limit)
	}
	return size, nil
}

// check is validate without the budget.
func (p *Producer) check(m *Message) (int64, error) {
	if max := p.maxSize(); len(m.Body) > max {
		return 0, fmt.Errorf("%w: body of %d bytes, max %d", ErrTooLarge, len(m.Body), max)
	}
	if m.DeliveryMode > Persistent {
		return 0, fmt.Errorf("%w: delivery mode %d (want 0, Transient or Persistent)", ErrInvalidMessage, m.DeliveryMode)
	}
	if m.Priority > 9 {
		return 0, fmt.Errorf("%w: priority %d (AMQP priorities are 0-9)", ErrInvalidMessage, m.Priority)
	}
	for i := 0; i < len(m.Expiration); i++ {
		if c := m.Expiration[i]; c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: expiration %.40q is not a number of milliseconds", ErrInvalidMessage, m.Expiration)
		}
	}
	// Any length over 255 sets a bit above the low 8 in the OR of them all:
	// one test on the hot path, the field named only on the slow one.
	if len(m.MessageID)|len(m.CorrelationID)|len(m.ReplyTo)|len(m.ContentType)|len(m.ContentEncoding)|
		len(m.Type)|len(m.AppID)|len(m.UserID)|len(m.Expiration)|len(m.RoutingKey) > maxShortString {
		return 0, longShortString(m)
	}
	if m.Headers == nil {
		return messageSize(m, 0), nil // nine short strings of at most 255 bytes fit in any frame (the routing key travels in the method frame)
	}
	size := len(m.MessageID) + len(m.CorrelationID) + len(m.ReplyTo) + len(m.ContentType) + len(m.ContentEncoding) +
		len(m.Type) + len(m.AppID) + len(m.UserID) + len(m.Expiration) + 9
	n, err := tableSize(m.Headers, 0)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrInvalidMessage, err)
	}
	size += n
	if size > maxPropertiesSize {
		return 0, fmt.Errorf("%w: properties and headers encode to %d bytes, more than the %d that fit in one AMQP frame", ErrInvalidMessage, size, maxPropertiesSize)
	}
	return messageSize(m, n), nil
}

// longShortString names the first short string of m over 255 bytes.
func longShortString(m *Message) error {
	for _, f := range [...]struct {
		name string
		v    string
	}{
		{"MessageID", m.MessageID},
		{"CorrelationID", m.CorrelationID},
		{"ReplyTo", m.ReplyTo},
		{"ContentType", m.ContentType},
		{"ContentEncoding", m.ContentEncoding},
		{"Type", m.Type},
		{"AppID", m.AppID},
		{"UserID", m.UserID},
		{"Expiration", m.Expiration},
		{"RoutingKey", m.RoutingKey},
	} {
		if len(f.v) > maxShortString {
			return fmt.Errorf("%w: %s of %d bytes, AMQP allows at most %d", ErrInvalidMessage, f.name, len(f.v), maxShortString)
		}
	}
	return nil
}

// maxDepth bounds the nesting of header tables and arrays (a cyclic table
// would otherwise never end).
const maxDepth = 32

// fieldError names where in the headers a key or value cannot be encoded.
// The path is built while unwinding, so a valid table costs no allocation
// for it.
type fieldError struct {
	path []string // innermost first
	msg  string
}

func (e *fieldError) Error() string {
	s := "Headers"
	for i := len(e.path) - 1; i >= 0; i-- {
		s += e.path[i]
	}
	return s + ": " + e.msg
}

func (e *fieldError) at(seg string) *fieldError {
	e.path = append(e.path, seg)
	return e
}

// tableSize returns the encoded size of t as amqp091-go writes it, or an
// error naming the first key or value it cannot write.
func tableSize(t amqp.Table, depth int) (int, *fieldError) {
	if depth > maxDepth {
		return 0, &fieldError{msg: fmt.Sprintf("nested more than %d levels deep", maxDepth)}
	}
	n := 4 // the table's length prefix
	for k, v := range t {
		if len(k) > maxShortString {
			return 0, &fieldError{msg: fmt.Sprintf("key %.32q... of %d bytes, AMQP allows at most %d", k, len(k), maxShortString)}
		}
		vs, err := fieldSize(v, depth+1)
		if err != nil {
			return 0, err.at(fmt.Sprintf("[%.32q]", k))
		}
		n += 1 + len(k) + vs
	}
	return n, nil
}

// fieldSize returns the encoded size of one field value (its type byte
// included). It accepts exactly the types amqp091-go's writeField encodes, and
// refuses an int outside the int32 range, which amqp091-go would silently
// truncate to 32 bits.
func fieldSize(v any, depth int) (int, *fieldError) {
	switch x := v.(type) {
	case nil:
		return 1, nil
	case bool, byte, int8:
		return 2, nil
	case int16, uint16:
		return 3, nil
	case int32, uint32, float32:
		return 5, nil
	case int:
		if x < math.MinInt32 || x > math.MaxInt32 {
			return 0, &fieldError{msg: fmt.Sprintf("int %d does not fit the 32 bits amqp091-go writes for an int (use int64)", x)}
		}
		return 5, nil
	case int64, float64, time.Time:
		return 9, nil
	case amqp.Decimal:
		return 6, nil
	case string:
		return 5 + len(x), nil
	case []byte:
		return 5 + len(x), nil
	case amqp.Table:
		n, err := tableSize(x, depth)
		return 1 + n, err
	case []any:
		if depth > maxDepth {
			return 0, &fieldError{msg: fmt.Sprintf("nested more than %d levels deep", maxDepth)}
		}
		n := 5
		for i, e := range x {
			s, err := fieldSize(e, depth+1)
			if err != nil {
				return 0, err.at(fmt.Sprintf("[%d]", i))
			}
			n += s
		}
		return n, nil
	}
	hint := ""
	switch v.(type) {
	case map[string]any:
		hint = " (use amqp091.Table)"
	case uint, uint64:
		hint = " (use int64, or uint32 when it fits)"
	case []string, []int, []int64, []amqp.Table:
		hint = " (use []any)"
	}
	return 0, &fieldError{msg: fmt.Sprintf("a value of type %T cannot be encoded in an AMQP table%s", v, hint)}
}
