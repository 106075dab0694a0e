package lavinmq_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

// TestRecordedQueueReturnsTheDeclaration: RecordedQueue gives back the
// declaration as recorded, keeps it when a later declaration of the same name
// is refused (406), and knows nothing of a queue not declared or deleted.
func TestRecordedQueueReturnsTheDeclaration(t *testing.T) {
	c, _ := newClient(t, testbroker.URL(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := testbroker.Name(t, "q")
	if _, ok := c.RecordedQueue(name); ok {
		t.Fatal("a queue never declared is recorded")
	}
	want := lavinmq.Queue{Name: name, AutoDelete: false, Args: amqp.Table{"x-message-ttl": int32(60000)}}
	if _, err := c.DeclareQueue(ctx, want); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.DeleteQueue(context.Background(), name) })
	if got, ok := c.RecordedQueue(name); !ok || !reflect.DeepEqual(got, want) {
		t.Fatalf("RecordedQueue = %+v, %v; want %+v", got, ok, want)
	}
	if _, err := c.DeclareQueue(ctx, lavinmq.Queue{Name: name, Durable: true}); err == nil {
		t.Fatal("an inequivalent declaration was accepted")
	}
	if got, ok := c.RecordedQueue(name); !ok || !reflect.DeepEqual(got, want) {
		t.Fatalf("after a refused declaration RecordedQueue = %+v, %v; want %+v", got, ok, want)
	}
	if _, err := c.DeleteQueue(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.RecordedQueue(name); ok {
		t.Fatal("a deleted queue is still recorded")
	}
}
