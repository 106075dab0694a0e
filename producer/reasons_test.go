package producer_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

// Each broker-side drop reason, caused for real.

func TestUnroutableIsReported(t *testing.T) {
	c := newClient(t, testbroker.URL(t))
	drops := newDropLog()
	p := newProducer(t, c, testbroker.Name(t, "missing"), producer.OnDrop(drops.fn))
	for i := range uint64(3) {
		if err := p.Publish(context.Background(), producer.Message{Body: seqBody(i)}); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, p, 10*time.Second)
	s := p.Stats()
	checkInvariant(t, s)
	if s.DroppedBy[producer.Unroutable] != 3 || s.Confirmed != 0 || drops.count(producer.Unroutable) != 3 {
		t.Fatalf("3 messages to a queue that does not exist: %+v", s)
	}
}

func TestNackedAfterRetryBudget(t *testing.T) {
	c := newClient(t, testbroker.URL(t))
	q := declare(t, amqp.Table{"x-max-length": int32(1), "x-overflow": "reject-publish"})
	drops := newDropLog()
	p := newProducer(t, c, q, producer.OnDrop(drops.fn), producer.WithRetryBudget(3),
		producer.WithReopenDelay(10*time.Millisecond, 50*time.Millisecond))
	for i := range uint64(3) {
		if err := p.Publish(context.Background(), producer.Message{Body: seqBody(i)}); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, p, 20*time.Second)
	s := p.Stats()
	checkInvariant(t, s)
	if s.Confirmed != 1 || s.DroppedBy[producer.Nacked] != 2 || drops.count(producer.Nacked) != 2 {
		t.Fatalf("queue of max length 1 rejecting publishes, 3 messages: %+v", s)
	}
	if s.Resent < 2 {
		t.Fatalf("nacked messages were not published again before giving up: resent %d", s.Resent)
	}
	if n := testbroker.QueueLen(t, q); n != 1 {
		t.Fatalf("queue holds %d messages, want 1", n)
	}
}

// TestBrokerMaxMessageSize lowers the broker's max_message_size: the message
// it refuses (406, channel closed) is reported TooLarge, the producer learns
// the limit (Publish then fails at once) and the next messages still arrive.
func TestBrokerMaxMessageSize(t *testing.T) {
	testbroker.Ctl(t, "eval", "application:set_env(rabbit, max_message_size, 1048576).")
	t.Cleanup(func() { testbroker.Ctl(t, "eval", "application:set_env(rabbit, max_message_size, 134217728).") })
	c := newClient(t, testbroker.URL(t))
	q := declare(t, nil)
	drops := newDropLog()
	p := newProducer(t, c, q, producer.OnDrop(drops.fn), producer.WithReopenDelay(10*time.Millisecond, 50*time.Millisecond))
	if err := p.Publish(context.Background(), producer.Message{Body: make([]byte, 2<<20)}); err != nil {
		t.Fatalf("2 MiB is under the producer's own max: %v", err)
	}
	flush(t, p, 20*time.Second)
	if s := p.Stats(); s.DroppedBy[producer.TooLarge] != 1 || drops.count(producer.TooLarge) != 1 {
		t.Fatalf("message over the broker's max: %+v", s)
	}
	err := p.Publish(context.Background(), producer.Message{Body: make([]byte, 2<<20)})
	if !errors.Is(err, producer.ErrTooLarge) || !strings.Contains(err.Error(), "1048576") {
		t.Fatalf("after learning the broker's max, Publish = %v, want ErrTooLarge naming 1048576", err)
	}
	for i := range uint64(10) {
		if err := p.Publish(context.Background(), producer.Message{Body: seqBody(i)}); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, p, 20*time.Second)
	if r := consumeAll(t, q, 10, 200*time.Millisecond, 10*time.Second); len(r.count) != 10 {
		t.Fatalf("received %d of 10 small messages after the refusal", len(r.count))
	}
}

// TestChannelErrorIsolation: a producer publishing to an exchange that does
// not exist gets its channel closed (404) again and again; another producer
// on the same client is not disturbed, the connection is not replaced, and
// the first producer's messages are kept and delivered once the exchange
// exists.
func TestChannelErrorIsolation(t *testing.T) {
	c := newClient(t, testbroker.URL(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cn, err := c.Connection(ctx)
	if err != nil {
		t.Fatal(err)
	}
	exchange := testbroker.Name(t, "x")
	qa, qb := declare(t, nil), declare(t, nil)
	bad := newProducer(t, c, qa, producer.WithExchange(exchange, qa), producer.WithReopenDelay(20*time.Millisecond, 200*time.Millisecond))
	good := newProducer(t, c, qb)
	for i := range uint64(100) {
		if err := bad.Publish(ctx, producer.Message{Body: seqBody(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range uint64(2000) {
		if err := good.Publish(ctx, producer.Message{Body: seqBody(i)}); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, good, 20*time.Second)
	if r := consumeAll(t, qb, 2000, 200*time.Millisecond, 20*time.Second); len(r.count) != 2000 {
		t.Fatalf("the good producer delivered %d of 2000", len(r.count))
	}
	if s := bad.Stats(); s.Confirmed != 0 || s.Dropped != 0 || s.Pending != 100 {
		t.Fatalf("the producer on a missing exchange must keep its messages: %+v", s)
	}
	cn2, err := c.Connection(ctx)
	if err != nil || cn2.Generation() != cn.Generation() {
		t.Fatalf("the connection was replaced (generation %d -> %d, %v)", cn.Generation(), cn2.Generation(), err)
	}
	ch := testbroker.Raw(t)
	if err := ch.ExchangeDeclare(exchange, "direct", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(qa, qa, exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	flush(t, bad, 20*time.Second)
	if r := consumeAll(t, qa, 100, 200*time.Millisecond, 20*time.Second); len(r.count) != 100 {
		t.Fatalf("kept messages delivered once the exchange exists: %d of 100", len(r.count))
	}
}

func TestDeclareOption(t *testing.T) {
	c := newClient(t, testbroker.URL(t))
	q := testbroker.Name(t, "declared")
	p := newProducer(t, c, q, producer.WithDeclare(amqp.Table{"x-queue-type": "classic"}))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = c.DeleteQueue(ctx, q)
	})
	for i := range uint64(10) {
		if err := p.Publish(context.Background(), producer.Message{Body: seqBody(i)}); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, p, 10*time.Second)
	if n := testbroker.QueueLen(t, q); n != 10 {
		t.Fatalf("declared queue holds %d, want 10", n)
	}
}
