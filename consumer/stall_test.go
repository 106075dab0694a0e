package consumer_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

// TestCloseEndsRunWhenBrokerStopsReading: a broker that stops reading the
// socket (what RabbitMQ does to a blocked connection; here a toxiproxy that
// swallows what the client sends while the broker's heartbeats still arrive)
// answers neither basic.cancel nor channel.close. Close with a 1s ctx must
// return at its ctx and Run right after it, not when the connection dies.
func TestCloseEndsRunWhenBrokerStopsReading(t *testing.T) {
	q := rawQueue(t)
	p := testbroker.NewProxy(t)
	c := newClient(t, p.URL, lavinmq.WithHeartbeat(10*time.Second))
	k, err := consumer.New(c, q)
	if err != nil {
		t.Fatal(err)
	}
	var got received
	errc := make(chan error, 1)
	go func() {
		errc <- k.Run(context.Background(), func(_ context.Context, d consumer.Delivery) consumer.Action { got.add(d); return consumer.Ack })
	}()
	publish(t, q, "before")
	testbroker.Eventually(t, 10*time.Second, "the first delivery", func() bool { return got.has("before") })

	p.AddToxic("swallow", "timeout", "upstream", map[string]any{"timeout": 0})
	defer p.RemoveToxic("swallow")
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	t0 := time.Now()
	cerr := k.Close(ctx)
	closed := time.Since(t0)
	var runErr error
	select {
	case runErr = <-errc:
	case <-time.After(time.Minute):
		t.Fatal("Run did not return within 1m of Close")
	}
	ran := time.Since(t0)
	t.Logf("Close returned after %v (%v), Run after %v (%v)", closed, cerr, ran, runErr)
	if !errors.Is(cerr, context.DeadlineExceeded) {
		t.Fatalf("Close: %v, want the ctx's error (the broker never answered)", cerr)
	}
	if ran > 3*time.Second {
		t.Fatalf("Run returned %v after Close began (its ctx: 1s) on a connection the broker does not read", ran)
	}
	if runErr != nil {
		t.Fatalf("Run after Close: %v, want nil", runErr)
	}
}
