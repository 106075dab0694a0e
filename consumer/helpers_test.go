package consumer_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

// newClient connects a client to url (the broker or a proxy) and closes it when the test ends.
func newClient(t *testing.T, url string, opts ...lavinmq.Option) *lavinmq.Client {
	t.Helper()
	c, err := lavinmq.New(url, opts...)
	if err != nil {
		t.Fatalf("lavinmq.New: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatalf("wait connected: %v", err)
	}
	return c
}

// rawQueue declares a fresh non-durable queue with a raw channel; it is deleted when the test ends.
func rawQueue(t *testing.T) string {
	t.Helper()
	q := testbroker.Name(t, "q")
	if _, err := testbroker.Raw(t).QueueDeclare(q, false, false, false, false, nil); err != nil {
		t.Fatalf("declare %s: %v", q, err)
	}
	t.Cleanup(func() { deleteQueue(t, q) })
	return q
}

func deleteQueue(t *testing.T, q string) {
	conn, err := amqp.Dial(testbroker.URL(t))
	if err != nil {
		t.Errorf("cleanup dial: %v", err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Errorf("cleanup channel: %v", err)
		return
	}
	_, _ = ch.QueueDelete(q, false, false, false)
}

// publish sends bodies to q on a fresh raw connection (so that it works right
// after close_all_connections) and waits for the broker's confirms.
func publish(t *testing.T, q string, bodies ...string) {
	t.Helper()
	conn, err := amqp.Dial(testbroker.URL(t))
	if err != nil {
		t.Fatalf("publish dial: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("publish channel: %v", err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatalf("confirm mode: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, b := range bodies {
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", q, false, false, amqp.Publishing{Body: []byte(b)})
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		if ok, err := dc.WaitContext(ctx); !ok || err != nil {
			t.Fatalf("publish %q not confirmed: %v", b, err)
		}
	}
}

// run starts k.Run in the background; the returned stop cancels it and
// returns Run's error. stop is also called when the test ends.
func run(t *testing.T, k *consumer.Consumer, h consumer.Handler) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- k.Run(ctx, h) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-errc:
			case <-time.After(30 * time.Second):
				err = errors.New("Run did not return 30s after its ctx was cancelled")
			}
		})
		return err
	}
	t.Cleanup(func() {
		if err := stop(); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	})
	return stop
}

// received records the bodies a handler saw, in order.
type received struct {
	mu     sync.Mutex
	bodies []string
	times  []time.Time
}

func (r *received) add(d consumer.Delivery) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bodies = append(r.bodies, string(d.Body))
	r.times = append(r.times, time.Now())
}

func (r *received) has(bodies ...string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := make(map[string]bool, len(r.bodies))
	for _, b := range r.bodies {
		seen[b] = true
	}
	for _, b := range bodies {
		if !seen[b] {
			return false
		}
	}
	return true
}

// firstAfter returns the time of the first delivery after t0 whose body is in want.
func (r *received) firstAfter(t0 time.Time, want map[string]bool) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, ts := range r.times {
		if ts.After(t0) && want[r.bodies[i]] {
			return ts
		}
	}
	return time.Time{}
}

func bodies(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + "-" + strconv.Itoa(i)
	}
	return out
}

func set(bs []string) map[string]bool {
	m := make(map[string]bool, len(bs))
	for _, b := range bs {
		m[b] = true
	}
	return m
}

// connectedAt records when the client (re)connected.
type connectedAt struct {
	mu    sync.Mutex
	times []time.Time
}

func (c *connectedAt) OnConnected(ev lavinmq.ConnectedEvent) {
	if !ev.Reconnect {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.times = append(c.times, time.Now())
}

func (c *connectedAt) last() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.times) == 0 {
		return time.Time{}
	}
	return c.times[len(c.times)-1]
}
