package tracing

import (
	amqp "github.com/rabbitmq/amqp091-go"
)

// headerCarrier writes trace context into a message's headers copy-on-write:
// the caller's table is read, never written (it may be shared between
// messages, or reused by the caller); the first Set makes a copy holding the
// caller's entries, and Set writes there. out is nil until then.
type headerCarrier struct {
	src amqp.Table
	out amqp.Table
}

func (c *headerCarrier) table() amqp.Table {
	if c.out != nil {
		return c.out
	}
	return c.src
}

// Get returns the string value of key, or "".
func (c *headerCarrier) Get(key string) string { return stringOf(c.table()[key]) }

// Set stores key in the copy.
func (c *headerCarrier) Set(key, value string) {
	if c.out == nil {
		c.out = make(amqp.Table, len(c.src)+2)
		for k, v := range c.src {
			c.out[k] = v
		}
	}
	c.out[key] = value
}

// Keys lists the header keys.
func (c *headerCarrier) Keys() []string {
	t := c.table()
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	return keys
}

// tableCarrier reads trace context from a delivery's headers.
type tableCarrier amqp.Table

func (c tableCarrier) Get(key string) string { return stringOf(c[key]) }
func (c tableCarrier) Set(string, string)    {} // never written: a delivery is read only
func (c tableCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// stringOf reads a header value as a string: AMQP long strings arrive as
// string from amqp091-go, and as []byte from some other clients.
func stringOf(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	}
	return ""
}
