package lavinmq

import (
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Limits of what a declaration can carry. AMQP short strings (queue, exchange
// and exchange-type names, routing keys, table keys) are at most 255 bytes:
// amqp091-go fails the whole frame on a longer one, which closes the
// connection. Tables nest at most maxTableDepth levels deep (a table that
// contains itself would otherwise recurse forever).
const (
	maxShortstr   = 255
	maxTableDepth = 32
)

// checkName refuses a short string the wire cannot carry.
func checkName(field, s string) error {
	if len(s) > maxShortstr {
		return fmt.Errorf("%w: %s is %d bytes, at most %d", ErrInvalidTopology, field, len(s), maxShortstr)
	}
	return nil
}

// checkArgs refuses arguments amqp091-go cannot encode: a value of a type it
// does not know (uint, []string, a map that is not an amqp.Table...), at any
// depth, a key longer than a short string, or tables nested too deep.
func checkArgs(field string, t amqp.Table) error {
	if err := checkTable(t, 0); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalidTopology, field, err)
	}
	if err := t.Validate(); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalidTopology, field, err)
	}
	return nil
}

func checkTable(t amqp.Table, depth int) error {
	if depth > maxTableDepth {
		return fmt.Errorf("tables nested deeper than %d levels", maxTableDepth)
	}
	for k, v := range t {
		if len(k) > maxShortstr {
			return fmt.Errorf("key of %d bytes, at most %d", len(k), maxShortstr)
		}
		if err := checkValue(v, depth); err != nil {
			return fmt.Errorf("key %q: %w", k, err)
		}
	}
	return nil
}

func checkValue(v any, depth int) error {
	switch v := v.(type) {
	case amqp.Table:
		return checkTable(v, depth+1)
	case []any:
		if depth+1 > maxTableDepth {
			return fmt.Errorf("arrays nested deeper than %d levels", maxTableDepth)
		}
		for _, e := range v {
			if err := checkValue(e, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// tableSize is the encoded size of a table (its 4-byte length included), as
// amqp091-go writes it. Call it only on a table checkArgs accepted.
func tableSize(t amqp.Table) int {
	n := 4
	for k, v := range t {
		n += 1 + len(k) + fieldSize(v)
	}
	return n
}

func fieldSize(v any) int {
	switch v := v.(type) {
	case bool, byte, int8:
		return 2
	case int16, uint16:
		return 3
	case int, int32, uint32, float32:
		return 5
	case int64, float64, time.Time:
		return 9
	case amqp.Decimal:
		return 6
	case string:
		return 5 + len(v)
	case []byte:
		return 5 + len(v)
	case []any:
		n := 5
		for _, e := range v {
			n += fieldSize(e)
		}
		return n
	case amqp.Table:
		return 1 + tableSize(v)
	}
	return 1 // nil
}

// methodSize is an upper bound of the encoded size of a declare or bind
// method frame's payload carrying these short strings and args: class and
// method ids, the reserved short, the strings, one byte of flags, the table.
func methodSize(args amqp.Table, names ...string) int {
	n := 4 + 2 + 1 + tableSize(args)
	for _, s := range names {
		n += 1 + len(s)
	}
	return n
}

// checkFrame refuses a method whose payload does not fit in one frame of the
// connection (its negotiated frame_max, less the 8 bytes of frame header and
// end): the broker would close the connection with a frame error.
func checkFrame(conn *amqp.Connection, size int) error {
	if max := conn.Config.FrameSize; max > 0 && size > max-8 {
		return fmt.Errorf("%w: declaration of %d bytes does not fit in a frame (frame_max %d): args too large", ErrInvalidTopology, size, max)
	}
	return nil
}

// Validate checks q as DeclareQueue does before sending it: the name at most
// 255 bytes, args that amqp091-go can encode (see amqp.Table.Validate) with
// keys of at most 255 bytes, nested at most 32 deep. Its error wraps
// ErrInvalidTopology and names the field. The frame-size check needs the
// connection and is made by DeclareQueue only.
func (q Queue) Validate() error {
	if err := checkName("queue name", q.Name); err != nil {
		return err
	}
	return checkArgs("queue args", q.Args)
}

// Validate checks e as DeclareExchange does: a name and a kind, each at most
// 255 bytes, and args as for Queue.Validate.
func (e Exchange) Validate() error {
	if e.Name == "" || e.Kind == "" {
		return fmt.Errorf("%w: exchange needs a name and a kind", ErrInvalidTopology)
	}
	if err := checkName("exchange name", e.Name); err != nil {
		return err
	}
	if err := checkName("exchange kind", e.Kind); err != nil {
		return err
	}
	return checkArgs("exchange args", e.Args)
}

// Validate checks b as BindQueue and UnbindQueue do: a queue and an exchange,
// queue, exchange and key each at most 255 bytes, and args as for Queue.Validate.
func (b Binding) Validate() error {
	if b.Queue == "" || b.Exchange == "" {
		return fmt.Errorf("%w: binding needs a queue and an exchange", ErrInvalidTopology)
	}
	if err := checkName("binding queue", b.Queue); err != nil {
		return err
	}
	if err := checkName("binding exchange", b.Exchange); err != nil {
		return err
	}
	if err := checkName("binding key", b.Key); err != nil {
		return err
	}
	return checkArgs("binding args", b.Args)
}

func (q Queue) size() int    { return methodSize(q.Args, q.Name) }
func (e Exchange) size() int { return methodSize(e.Args, e.Name, e.Kind) }
func (b Binding) size() int  { return methodSize(b.Args, b.Queue, b.Exchange, b.Key) }
