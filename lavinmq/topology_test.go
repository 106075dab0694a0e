package lavinmq_test

import (
	"context"
	"errors"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

func TestTopologyReplayedAfterReconnect(t *testing.T) {
	c, ev := newClient(t, testbroker.URL(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ex, q := testbroker.Name(t, "ex"), testbroker.Name(t, "q")
	// Exclusive + auto-delete: the broker deletes the queue with the
	// connection, and the auto-delete exchange with its last binding.
	if err := c.DeclareExchange(ctx, lavinmq.Exchange{Name: ex, Kind: "direct", AutoDelete: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeclareQueue(ctx, lavinmq.Queue{Name: q, Exclusive: true, AutoDelete: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.BindQueue(ctx, lavinmq.Binding{Queue: q, Exchange: ex, Key: "k"}); err != nil {
		t.Fatal(err)
	}
	reconnectAfter(t, c, ev, func() { testbroker.CloseAllConnections(t) })

	// The queue exists and belongs to the new connection (an exclusive queue
	// of another connection would answer 405 RESOURCE_LOCKED).
	cn, err := c.Connection(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := cn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if _, err := ch.QueueDeclarePassive(q, false, true, true, false, nil); err != nil {
		t.Fatalf("queue %s not re-declared on the new connection: %v", q, err)
	}
	// The exchange and the binding are back: a message published to the
	// exchange with the key reaches the queue.
	raw := testbroker.Raw(t)
	if err := raw.PublishWithContext(ctx, ex, "k", true, false, amqp.Publishing{Body: []byte("hello")}); err != nil {
		t.Fatal(err)
	}
	testbroker.Eventually(t, 5*time.Second, "message routed through the replayed binding", func() bool {
		m, ok, err := ch.Get(q, true)
		return err == nil && ok && string(m.Body) == "hello"
	})
}

func TestTopologyDeletedQueueIsForgotten(t *testing.T) {
	c, ev := newClient(t, testbroker.URL(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q := testbroker.Name(t, "q")
	if _, err := c.DeclareQueue(ctx, lavinmq.Queue{Name: q}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteQueue(ctx, q); err != nil {
		t.Fatal(err)
	}
	reconnectAfter(t, c, ev, func() { testbroker.CloseAllConnections(t) })
	if n := testbroker.QueueLen(t, q); n != -1 {
		t.Fatalf("deleted queue %s was declared again after the reconnect", q)
	}
}

func TestTopologyRefusedDeclarationIsNotRecorded(t *testing.T) {
	c, _ := newClient(t, testbroker.URL(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q := testbroker.Name(t, "q")
	if _, err := c.DeclareQueue(ctx, lavinmq.Queue{Name: q, AutoDelete: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.DeleteQueue(context.Background(), q) })
	// Same name, other properties: 406 PRECONDITION_FAILED, reachable with errors.As.
	_, err := c.DeclareQueue(ctx, lavinmq.Queue{Name: q, Durable: true})
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != amqp.PreconditionFailed {
		t.Fatalf("conflicting declare = %v, want *amqp091.Error 406", err)
	}
	// The connection survived the channel error.
	if !c.Connected() {
		t.Fatal("a channel-level error took the connection down")
	}
}

func TestTopologyInvalidInput(t *testing.T) {
	c, _ := newClient(t, testbroker.URL(t))
	ctx := context.Background()
	if err := c.DeclareExchange(ctx, lavinmq.Exchange{Name: "x"}); !errors.Is(err, lavinmq.ErrInvalidTopology) {
		t.Fatalf("exchange without kind = %v, want ErrInvalidTopology", err)
	}
	if err := c.BindQueue(ctx, lavinmq.Binding{Queue: "q"}); !errors.Is(err, lavinmq.ErrInvalidTopology) {
		t.Fatalf("binding without exchange = %v, want ErrInvalidTopology", err)
	}
	c.Close()
	if _, err := c.DeclareQueue(ctx, lavinmq.Queue{Name: "q"}); !errors.Is(err, lavinmq.ErrClosed) {
		t.Fatalf("DeclareQueue after Close = %v, want ErrClosed", err)
	}
}
