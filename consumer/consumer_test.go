package consumer_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

// offlineClient returns a client that never connects (nothing listens on the
// port): enough for the checks that need no broker.
func offlineClient(t *testing.T) *lavinmq.Client {
	t.Helper()
	c, err := lavinmq.New("amqp://guest:guest@127.0.0.1:1/")
	if err != nil {
		t.Fatalf("lavinmq.New: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func ack(context.Context, consumer.Delivery) consumer.Action { return consumer.Ack }

func TestNewRejectsBadConfig(t *testing.T) {
	c := offlineClient(t)
	cases := []struct {
		name   string
		client *lavinmq.Client
		queue  string
		opts   []consumer.Option
	}{
		{"nil client", nil, "q", nil},
		{"empty queue", c, "", nil},
		{"queue name too long", c, string(make([]byte, 256)), nil},
		{"nil option", c, "q", []consumer.Option{nil}},
		{"prefetch 0", c, "q", []consumer.Option{consumer.WithPrefetch(0)}},
		{"prefetch negative", c, "q", []consumer.Option{consumer.WithPrefetch(-1)}},
		{"prefetch over 65535", c, "q", []consumer.Option{consumer.WithPrefetch(65536)}},
		{"concurrency 0", c, "q", []consumer.Option{consumer.WithConcurrency(0)}},
		{"empty tag prefix", c, "q", []consumer.Option{consumer.WithTagPrefix("")}},
		{"retry delay 0", c, "q", []consumer.Option{consumer.WithRetryDelay(0, time.Second)}},
		{"retry max below initial", c, "q", []consumer.Option{consumer.WithRetryDelay(time.Second, time.Millisecond)}},
		{"nil logger", c, "q", []consumer.Option{consumer.WithLogger(nil)}},
		{"nil hook", c, "q", []consumer.Option{consumer.WithHooks(nil)}},
		{"hook implementing no hook interface", c, "q", []consumer.Option{consumer.WithHooks(struct{}{})}},
		{"bad queue argument", c, "q", []consumer.Option{consumer.WithDeclare(amqp.Table{"x": struct{}{}})}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k, err := consumer.New(tc.client, tc.queue, tc.opts...)
			if !errors.Is(err, consumer.ErrInvalidConfig) {
				t.Fatalf("New: got (%v, %v), want ErrInvalidConfig", k, err)
			}
			t.Log(err)
		})
	}
}

func TestNewAcceptsOptions(t *testing.T) {
	k, err := consumer.New(offlineClient(t), "q",
		consumer.WithPrefetch(1), consumer.WithConcurrency(64), consumer.WithTagPrefix("svc"),
		consumer.WithDeclare(amqp.Table{"x-queue-type": "classic"}), consumer.WithRequeueOnPanic(false),
		consumer.WithRetryDelay(time.Millisecond, time.Millisecond), consumer.WithHooks(&panickyHook{}),
		consumer.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	if k.Queue() != "q" {
		t.Fatalf("Queue() = %q", k.Queue())
	}
	if s := k.Stats(); s != (consumer.Stats{}) {
		t.Fatalf("fresh consumer has stats %+v", s)
	}
}

func TestRunRejectsNilHandler(t *testing.T) {
	k, err := consumer.New(offlineClient(t), "q")
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Run(context.Background(), nil); !errors.Is(err, consumer.ErrNilHandler) {
		t.Fatalf("Run(nil handler) = %v, want ErrNilHandler", err)
	}
}

func TestRunTwiceIsErrRunningAndCloseEndsRun(t *testing.T) {
	k, err := consumer.New(offlineClient(t), "q")
	if err != nil {
		t.Fatal(err)
	}
	// Two Runs at once: one waits for a connection that never comes, the other is refused.
	errc := make(chan error, 2)
	for range 2 {
		go func() { errc <- k.Run(context.Background(), ack) }()
	}
	select {
	case err := <-errc:
		if !errors.Is(err, consumer.ErrRunning) {
			t.Fatalf("one of two concurrent Runs returned %v, want ErrRunning", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("neither of two concurrent Runs returned ErrRunning")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := k.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("Run after Close returned %v, want nil", err)
	}
	if err := k.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := k.Run(context.Background(), ack); !errors.Is(err, consumer.ErrClosed) {
		t.Fatalf("Run after Close = %v, want ErrClosed", err)
	}
}

func TestRunReturnsCtxErr(t *testing.T) {
	k, err := consumer.New(offlineClient(t), "q")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := k.Run(ctx, ack); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %v, want context.DeadlineExceeded", err)
	}
}

func TestRunEndsWhenClientClosed(t *testing.T) {
	c := offlineClient(t)
	k, err := consumer.New(c, "q")
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	if err := k.Run(context.Background(), ack); !errors.Is(err, lavinmq.ErrClosed) {
		t.Fatalf("Run on a closed client = %v, want lavinmq.ErrClosed", err)
	}
}

func TestActionString(t *testing.T) {
	for a, want := range map[consumer.Action]string{
		consumer.Ack: "ack", consumer.NackRequeue: "nack_requeue", consumer.NackDiscard: "nack_discard", 9: "unknown",
	} {
		if got := a.String(); got != want {
			t.Errorf("Action(%d).String() = %q, want %q", a, got, want)
		}
	}
}
