package lavinmq

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"unicode/utf8"
)

// Name returns the client's name: the value of WithConnectionName, or, when
// none was given, "lavinmq-go-" followed by 8 random hex digits, drawn once
// in New. It is the connection name the broker shows for every connection of
// the client, and every hook event carries it (Client), so that one hook value
// can serve several clients: metrics uses it as the "client" label. Give every
// client of a process its own name; never put a secret in it.
func (c *Client) Name() string { return c.cfg.name }

// resolveName checks the name given with WithConnectionName or generates one.
// A name must be valid UTF-8: the broker shows it and metrics uses it as a
// label value.
func (c *cfg) resolveName() error {
	if c.name == "" {
		c.name = generateName()
		return nil
	}
	if !utf8.ValidString(c.name) {
		return fmt.Errorf("%w: connection name is not valid UTF-8", ErrInvalidConfig)
	}
	return nil
}

// generateName returns "lavinmq-go-" and 8 hex digits from crypto/rand
// (whose Read never fails).
func generateName() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "lavinmq-go-" + hex.EncodeToString(b[:])
}
