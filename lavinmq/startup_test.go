package lavinmq_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

const startupSecret = "wr0ng-Pa55-7q"

// startupFailure is a first connection that cannot succeed, and what its error must say.
type startupFailure struct {
	name string
	url  string
	opts []lavinmq.Option
	want string        // in the error text
	wait time.Duration // long enough for one attempt to fail
	code int           // *amqp091.Error code reachable through errors.As, 0 for none
}

func startupFailures(t *testing.T) []startupFailure {
	t.Helper()
	vhost, err := url.Parse(testbroker.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	vhost.Path = "/lmqgo-no-such-vhost"
	return []startupFailure{
		{
			name: "wrong password",
			url:  strings.Replace(testbroker.URL(t), "guest:guest", "guest:"+startupSecret, 1),
			// RabbitMQ answers a failed login only after a few seconds (3 s here).
			want: "username or password not allowed", code: amqp.AccessRefused, wait: 8 * time.Second,
		},
		{
			name: "unknown vhost",
			url:  vhost.String(),
			want: "lmqgo-no-such-vhost", code: amqp.NotAllowed, wait: 1500 * time.Millisecond,
		},
		{
			name: "untrusted certificate",
			url:  testbroker.TLSURL(t),
			opts: []lavinmq.Option{lavinmq.WithTLS(testbroker.TLSConfig(t, "other-ca.pem", ""))},
			want: "x509: certificate signed by unknown authority", wait: 1500 * time.Millisecond,
		},
	}
}

func checkCause(t *testing.T, err error, f startupFailure) {
	t.Helper()
	if !strings.Contains(err.Error(), f.want) {
		t.Fatalf("error %q does not name the cause %q", err, f.want)
	}
	if strings.Contains(err.Error(), startupSecret) {
		t.Fatalf("error leaks the password: %q", err)
	}
	if f.code != 0 {
		var ae *amqp.Error
		if !errors.As(err, &ae) || ae.Code != f.code {
			t.Fatalf("error %q: *amqp091.Error %v, want code %d", err, ae, f.code)
		}
	}
}

// TestWaitConnectedSaysWhyStartupFails: without WithFailFast the client keeps
// trying, and WaitConnected's error wraps both ctx's error and the last
// attempt's error.
func TestWaitConnectedSaysWhyStartupFails(t *testing.T) {
	for _, f := range startupFailures(t) {
		t.Run(f.name, func(t *testing.T) {
			c, ev := newClient(t, f.url, append([]lavinmq.Option{lavinmq.WithReconnectDelay(50*time.Millisecond, 200*time.Millisecond)}, f.opts...)...)
			ctx, cancel := context.WithTimeout(context.Background(), f.wait)
			defer cancel()
			err := c.WaitConnected(ctx)
			if err == nil {
				t.Fatal("connected")
			}
			t.Logf("WaitConnected (%v): %v", f.wait, err)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("error %q does not wrap context.DeadlineExceeded", err)
			}
			checkCause(t, err, f)
			if _, _, n := ev.counts(); n < 2 {
				t.Fatalf("%d attempts in %v: without WithFailFast the client keeps trying", n, f.wait)
			}
		})
	}
}

// TestFailFastEndsWaitConnectedAtOnce: with WithFailFast a permanent error on
// the first connection ends WaitConnected at once, and the client stops dialling.
func TestFailFastEndsWaitConnectedAtOnce(t *testing.T) {
	for _, f := range startupFailures(t) {
		t.Run(f.name, func(t *testing.T) {
			c, ev := newClient(t, f.url, append([]lavinmq.Option{lavinmq.WithFailFast(),
				lavinmq.WithReconnectDelay(10*time.Millisecond, 20*time.Millisecond)}, f.opts...)...)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			err := c.WaitConnected(ctx)
			took := time.Since(start)
			if err == nil {
				t.Fatal("connected")
			}
			t.Logf("WaitConnected with WithFailFast after %v: %v", took.Round(time.Millisecond), err)
			if took > 10*time.Second || errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("WaitConnected took %v (%v); WithFailFast must return at once", took, err)
			}
			if !errors.Is(err, lavinmq.ErrPermanent) || !errors.Is(err, lavinmq.ErrClosed) {
				t.Fatalf("error %q does not wrap ErrPermanent and ErrClosed", err)
			}
			checkCause(t, err, f)
			time.Sleep(300 * time.Millisecond) // 15 backoff delays: no more dials
			if _, _, n := ev.counts(); n != 1 {
				t.Fatalf("%d attempts; the client must stop after the permanent error", n)
			}
			if c.Connected() {
				t.Fatal("Connected() = true")
			}
			if err2 := c.WaitConnected(context.Background()); err2 == nil || err2.Error() != err.Error() {
				t.Fatalf("second WaitConnected = %v, want the same error", err2)
			}
			if _, err := c.DeclareQueue(context.Background(), lavinmq.Queue{Name: testbroker.Name(t, "q")}); !errors.Is(err, lavinmq.ErrPermanent) {
				t.Fatalf("DeclareQueue after giving up = %v, want ErrPermanent", err)
			}
		})
	}
}

// TestFailFastKeepsRetryingTransientErrors: a refused port is not permanent;
// WithFailFast keeps dialling and connects once the broker is reachable.
func TestFailFastKeepsRetryingTransientErrors(t *testing.T) {
	p := testbroker.NewProxy(t)
	p.Disable()
	c, _ := newClient(t, p.URL, lavinmq.WithFailFast(), lavinmq.WithReconnectDelay(20*time.Millisecond, 100*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	err := c.WaitConnected(ctx)
	cancel()
	t.Logf("WaitConnected with the broker down: %v", err)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("WaitConnected = %v, want DeadlineExceeded naming connection refused", err)
	}
	p.Enable()
	waitConnected(t, c, 10*time.Second)
}
