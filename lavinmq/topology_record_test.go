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

// TestTopologyBindingArgsAreItsIdentity: two headers-exchange bindings with
// the same (empty) key and different args are two bindings. Both come back
// after a forced reconnect, and UnbindQueue of one leaves the other, on the
// broker and in the record (checked again after a second reconnect), all by
// routing messages.
func TestTopologyBindingArgsAreItsIdentity(t *testing.T) {
	c, ev := newClient(t, testbroker.URL(t))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ex, q := testbroker.Name(t, "ex"), testbroker.Name(t, "q")
	if err := c.DeclareExchange(ctx, lavinmq.Exchange{Name: ex, Kind: "headers"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.DeleteExchange(context.Background(), ex) })
	// Exclusive: the broker deletes the queue and its bindings with the
	// connection, so only the replay can bring them back.
	if _, err := c.DeclareQueue(ctx, lavinmq.Queue{Name: q, Exclusive: true}); err != nil {
		t.Fatal(err)
	}
	red := lavinmq.Binding{Queue: q, Exchange: ex, Args: amqp.Table{"x-match": "all", "color": "red"}}
	blue := lavinmq.Binding{Queue: q, Exchange: ex, Args: amqp.Table{"x-match": "all", "color": "blue"}}
	for _, b := range []lavinmq.Binding{red, blue} {
		if err := c.BindQueue(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	reconnectAfter(t, c, ev, func() { testbroker.CloseAllConnections(t) })
	ch := onClientChannel(t, c)
	if !routed(t, ch, ex, "", q, amqp.Table{"color": "red"}, "red-1") {
		t.Fatal("red binding not replayed: a binding with the same key and other args replaced it")
	}
	if !routed(t, ch, ex, "", q, amqp.Table{"color": "blue"}, "blue-1") {
		t.Fatal("blue binding not replayed")
	}
	if err := c.UnbindQueue(ctx, red); err != nil {
		t.Fatal(err)
	}
	if routed(t, ch, ex, "", q, amqp.Table{"color": "red"}, "red-2") {
		t.Fatal("red still routed after UnbindQueue(red)")
	}
	if !routed(t, ch, ex, "", q, amqp.Table{"color": "blue"}, "blue-2") {
		t.Fatal("UnbindQueue(red) removed the blue binding on the broker")
	}
	reconnectAfter(t, c, ev, func() { testbroker.CloseAllConnections(t) })
	ch = onClientChannel(t, c)
	if !routed(t, ch, ex, "", q, amqp.Table{"color": "blue"}, "blue-3") {
		t.Fatal("UnbindQueue(red) removed the blue binding from the record: not replayed")
	}
	if routed(t, ch, ex, "", q, amqp.Table{"color": "red"}, "red-3") {
		t.Fatal("the unbound red binding was replayed")
	}
}

// TestTopologyRefusedRedeclarationKeepsRecord: a re-declaration that the
// broker refuses (406 PRECONDITION_FAILED, an inequivalent argument) leaves the earlier
// good record alone: the queue and its binding are replayed after a reconnect.
func TestTopologyRefusedRedeclarationKeepsRecord(t *testing.T) {
	te := &topoErrors{}
	c, ev := newClient(t, testbroker.URL(t), lavinmq.WithHooks(te))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ex, q := testbroker.Name(t, "ex"), testbroker.Name(t, "q")
	if err := c.DeclareExchange(ctx, lavinmq.Exchange{Name: ex, Kind: "direct", AutoDelete: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeclareQueue(ctx, lavinmq.Queue{Name: q, Exclusive: true, Args: amqp.Table{"x-max-length": int32(10)}}); err != nil {
		t.Fatal(err)
	}
	if err := c.BindQueue(ctx, lavinmq.Binding{Queue: q, Exchange: ex, Key: "k"}); err != nil {
		t.Fatal(err)
	}
	_, err := c.DeclareQueue(ctx, lavinmq.Queue{Name: q, Exclusive: true, Args: amqp.Table{"x-max-length": int32(20)}})
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != amqp.PreconditionFailed {
		t.Fatalf("conflicting re-declaration = %v, want *amqp091.Error 406", err)
	}
	reconnectAfter(t, c, ev, func() { testbroker.CloseAllConnections(t) })
	ch := onClientChannel(t, c)
	if _, err := ch.QueueDeclarePassive(q, false, false, true, false, nil); err != nil {
		t.Fatalf("queue %s not replayed after the refused re-declaration: %v", q, err)
	}
	if !routed(t, ch, ex, "k", q, nil, "hello") {
		t.Fatal("binding of the queue not replayed after the refused re-declaration")
	}
	if errs := te.all(); len(errs) != 0 {
		t.Fatalf("replay reported %d errors (the refused declaration was recorded): first %v", len(errs), errs[0])
	}
}
