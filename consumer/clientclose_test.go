package consumer_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

// TestClientCloseWaitsForHandlers: the client's Close closes the consumer
// first: the handlers in flight finish and their acks reach the broker
// before the connection goes, and Run says the client was closed.
func TestClientCloseWaitsForHandlers(t *testing.T) {
	q := rawQueue(t)
	c, err := lavinmq.New(testbroker.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	k, err := consumer.New(c, q, consumer.WithConcurrency(4), consumer.WithPrefetch(4))
	if err != nil {
		t.Fatal(err)
	}
	var started, finished atomic.Int64
	runErr := make(chan error, 1)
	go func() {
		runErr <- k.Run(context.Background(), func(context.Context, consumer.Delivery) consumer.Action {
			started.Add(1)
			time.Sleep(300 * time.Millisecond)
			finished.Add(1)
			return consumer.Ack
		})
	}()
	publish(t, q, bodies("m", 4)...)
	testbroker.Eventually(t, 10*time.Second, "handlers running", func() bool { return started.Load() > 0 })
	if err := c.Close(); err != nil {
		t.Fatalf("client Close: %v", err)
	}
	s := k.Stats()
	if finished.Load() != started.Load() || s.Acked != uint64(started.Load()) || s.InFlight != 0 {
		t.Fatalf("after the client's Close: started %d finished %d, stats %+v", started.Load(), finished.Load(), s)
	}
	select {
	case err := <-runErr:
		if !errors.Is(err, lavinmq.ErrClosed) {
			t.Fatalf("Run = %v, want lavinmq.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the client's Close")
	}
	if n := testbroker.QueueLen(t, q); n != 4-int(s.Acked) {
		t.Fatalf("queue holds %d, want the %d not acked", n, 4-s.Acked)
	}
}
