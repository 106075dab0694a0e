package lavinmq_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

// topoErrors records HookTopologyError calls.
type topoErrors struct {
	mu   sync.Mutex
	errs []topoErr
}

type topoErr struct {
	kind, name string
	err        error
}

func (e *topoErrors) OnTopologyError(ev lavinmq.TopologyErrorEvent) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.errs = append(e.errs, topoErr{ev.Kind, ev.Name, ev.Err})
}

var _ lavinmq.HookTopologyError = (*topoErrors)(nil)

func (e *topoErrors) all() []topoErr {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]topoErr(nil), e.errs...)
}

// count returns how many reports named name with the broker's code.
func (e *topoErrors) count(name string, code int) int {
	n := 0
	for _, r := range e.all() {
		var ae *amqp.Error
		if r.name == name && errors.As(r.err, &ae) && ae.Code == code {
			n++
		}
	}
	return n
}

// brokerChannels reads from the broker how many channels the connection
// named name (WithConnectionName) has open, or -1 when it is not listed.
func brokerChannels(t *testing.T, name string) int {
	t.Helper()
	return testbroker.ConnChannels(t, name)
}

// clientConn returns the client's connection in service.
func clientConn(t *testing.T, c *lavinmq.Client) *lavinmq.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cn, err := c.Connection(ctx)
	if err != nil {
		t.Fatalf("Connection: %v", err)
	}
	return cn
}

// routed publishes one message to exchange with key and headers and reports
// whether it reached queue within a second (it is taken off the queue).
func routed(t *testing.T, ch *amqp.Channel, exchange, key, queue string, headers amqp.Table, body string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ch.PublishWithContext(ctx, exchange, key, false, false, amqp.Publishing{Headers: headers, Body: []byte(body)}); err != nil {
		t.Fatalf("publish: %v", err)
	}
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		m, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatalf("get from %s: %v", queue, err)
		}
		if ok {
			if string(m.Body) != body {
				t.Fatalf("got %q from %s, want %q", m.Body, queue, body)
			}
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// onClientChannel opens a channel on the client's current connection (an
// exclusive queue of the client is reachable only there).
func onClientChannel(t *testing.T, c *lavinmq.Client) *amqp.Channel {
	t.Helper()
	ch, err := clientConn(t, c).Channel()
	if err != nil {
		t.Fatalf("channel: %v", err)
	}
	t.Cleanup(func() { ch.Close() })
	return ch
}
