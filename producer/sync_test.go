package producer_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/buffer"
	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

// TestPublishSyncReturnsNilAfterTheConfirm: PublishSync returns nil only
// once the broker has the message: it is counted confirmed and in the queue.
func TestPublishSyncReturnsNilAfterTheConfirm(t *testing.T) {
	q := declare(t, nil)
	c := newClient(t, testbroker.URL(t))
	p := newProducer(t, c, q)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range uint64(3) {
		if err := p.PublishSync(ctx, producer.Message{Body: seqBody(i)}); err != nil {
			t.Fatalf("PublishSync %d: %v", i, err)
		}
		if s := p.Stats(); s.Confirmed != i+1 || s.Pending != 0 {
			t.Fatalf("after PublishSync %d returned nil: %+v, want %d confirmed and none pending", i, s, i+1)
		}
	}
	if n := testbroker.QueueLen(t, q); n != 3 {
		t.Fatalf("queue holds %d messages after 3 PublishSync, want 3", n)
	}
}

// TestPublishSyncUnroutableKey: a message whose key no queue is bound to
// makes PublishSync return a *DropError naming unroutable and the key, that
// wraps ErrDropped and the reason.
func TestPublishSyncUnroutableKey(t *testing.T) {
	x, _ := declareTopic(t, "a.*")
	c := newClient(t, testbroker.URL(t))
	drops := &keyDrops{}
	p := newProducer(t, c, "events", producer.WithExchange(x, "a.default"), producer.OnDrop(drops.fn))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.PublishSync(ctx, producer.Message{Body: []byte("ok"), RoutingKey: "a.b"}); err != nil {
		t.Fatalf("routable key: %v", err)
	}
	err := p.PublishSync(ctx, producer.Message{Body: []byte("lost"), RoutingKey: "nobody.listens"})
	t.Logf("unroutable: %v", err)
	var de *producer.DropError
	if !errors.As(err, &de) || de.Reason != producer.Unroutable || de.RoutingKey != "nobody.listens" || de.MessageID == "" {
		t.Fatalf("PublishSync of an unroutable message: %v, want a *DropError with reason unroutable and its key", err)
	}
	if !errors.Is(err, producer.Unroutable) || !errors.Is(err, producer.ErrDropped) || !strings.Contains(err.Error(), "unroutable") {
		t.Fatalf("error %q must wrap Unroutable and ErrDropped and name unroutable", err)
	}
	if keys := drops.get(producer.Unroutable); len(keys) != 1 || keys[0] != "nobody.listens" {
		t.Fatalf("OnDrop unroutable keys %q, want [nobody.listens]", keys)
	}
}

// TestPublishSyncCtxEndsWhileBrokerDoesNotRead: when the broker does not
// take the message before ctx ends (a proxy swallows what the client sends,
// as a blocked broker does), PublishSync returns ctx's error and the message
// stays accepted: pending, then settled and counted once the link is back.
func TestPublishSyncCtxEndsWhileBrokerDoesNotRead(t *testing.T) {
	q := declare(t, nil)
	px := testbroker.NewProxy(t)
	c := newClient(t, px.URL, lavinmq.WithHeartbeat(time.Second), lavinmq.WithReconnectDelay(50*time.Millisecond, time.Second))
	drops := newDropLog()
	p := newProducer(t, c, q, producer.OnDrop(drops.fn))
	if err := c.WaitConnected(context.Background()); err != nil {
		t.Fatal(err)
	}
	px.AddToxic("swallow", "timeout", "upstream", map[string]any{"timeout": 0})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := p.PublishSync(ctx, producer.Message{Body: seqBody(7)})
	t.Logf("PublishSync with the broker not reading: %v", err)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("PublishSync: %v, want an error wrapping context.DeadlineExceeded", err)
	}
	if s := p.Stats(); s.Accepted != 1 || s.Pending != 1 {
		t.Fatalf("after ctx ended: %+v, want the message accepted and pending", s)
	}
	px.RemoveToxic("swallow")
	px.ResetPeer() // the swallowed bytes broke the stream: start a new connection
	time.Sleep(100 * time.Millisecond)
	px.RemoveToxic("reset")
	flush(t, p, 30*time.Second)
	s := p.Stats()
	checkInvariant(t, s)
	if s.Confirmed != 1 || drops.total() != 0 {
		t.Fatalf("after the link came back: %+v, drops %v; want the message confirmed", s, drops.by)
	}
	r := consumeAll(t, q, 1, 300*time.Millisecond, 10*time.Second)
	if r.count[7] == 0 {
		t.Fatalf("the message never reached the queue: %+v", r)
	}
}

// TestPublishSyncReportsEvictionAndShutdown: with the broker unreachable,
// PublishSync returns the reason its message was dropped: evicted by a later
// Publish on a full DropOldest buffer, or shutdown when Close gives up.
func TestPublishSyncReportsEvictionAndShutdown(t *testing.T) {
	c, err := lavinmq.New("amqp://guest:guest@127.0.0.1:1/", lavinmq.WithReconnectDelay(time.Second, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := producer.New(c, "orders", producer.WithBufferSize(1), producer.WithPolicy(buffer.DropOldest))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sync := func(body string) <-chan error {
		ch := make(chan error, 1)
		go func() { ch <- p.PublishSync(ctx, producer.Message{Body: []byte(body)}) }()
		return ch
	}
	first := sync("first")
	testbroker.Eventually(t, 5*time.Second, "the first message buffered", func() bool { return p.Stats().Accepted == 1 })
	if err := p.Publish(ctx, producer.Message{Body: []byte("second")}); err != nil {
		t.Fatal(err)
	}
	if err := waitErr(t, first); !errors.Is(err, producer.Evicted) {
		t.Fatalf("PublishSync of an evicted message: %v, want an error wrapping Evicted", err)
	}
	third := sync("third") // evicts "second"
	testbroker.Eventually(t, 5*time.Second, "the third message buffered", func() bool { return p.Stats().Accepted == 3 })
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_ = p.Close(cctx)
	err = waitErr(t, third)
	var de *producer.DropError
	if !errors.As(err, &de) || de.Reason != producer.Shutdown || de.RoutingKey != "orders" {
		t.Fatalf("PublishSync when Close gave up: %v, want a *DropError with reason shutdown and key orders", err)
	}
	if err := p.PublishSync(ctx, producer.Message{}); !errors.Is(err, producer.ErrClosed) {
		t.Fatalf("PublishSync after Close: %v, want ErrClosed", err)
	}
	if s := p.Stats(); s.Accepted != 3 || s.Dropped != 3 {
		t.Fatalf("stats %+v, want 3 accepted and 3 dropped", s)
	}
}

func waitErr(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("PublishSync did not return")
		return nil
	}
}

// TestPublishSyncRefusesWhatPublishRefuses: validation errors come back at
// once, nothing is accepted.
func TestPublishSyncRefusesWhatPublishRefuses(t *testing.T) {
	c, err := lavinmq.New("amqp://guest:guest@127.0.0.1:1/")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := producer.New(c, "orders")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = p.Close(ctx)
	}()
	err = p.PublishSync(context.Background(), producer.Message{Headers: amqp.Table{"bad": uint64(1)}})
	if !errors.Is(err, producer.ErrInvalidMessage) {
		t.Fatalf("PublishSync with an unencodable header: %v, want ErrInvalidMessage", err)
	}
	//lint:ignore SA1012 a nil ctx is what this checks
	if err := p.PublishSync(nil, producer.Message{}); !errors.Is(err, producer.ErrInvalidArgument) { //nolint:staticcheck
		t.Fatalf("PublishSync(nil ctx): %v, want ErrInvalidArgument", err)
	}
	if s := p.Stats(); s.Accepted != 0 {
		t.Fatalf("accepted %d, want 0", s.Accepted)
	}
}

// TestPublishSyncFireAndForgetReturnsOnceWritten: in FireAndForget there is
// no confirm; PublishSync returns nil once the message is on the socket.
func TestPublishSyncFireAndForgetReturnsOnceWritten(t *testing.T) {
	q := declare(t, nil)
	c := newClient(t, testbroker.URL(t))
	p := newProducer(t, c, q, producer.WithMode(producer.FireAndForget))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.PublishSync(ctx, producer.Message{Body: seqBody(1)}); err != nil {
		t.Fatalf("PublishSync: %v", err)
	}
	if s := p.Stats(); s.Confirmed != 1 || s.Pending != 0 {
		t.Fatalf("after PublishSync: %+v, want it counted written (confirmed) and none pending", s)
	}
	if r := consumeAll(t, q, 1, 200*time.Millisecond, 10*time.Second); r.count[1] != 1 {
		t.Fatalf("the message did not arrive: %+v", r)
	}
}
