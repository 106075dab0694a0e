package lavinmq_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

func TestNewRejectsBadInput(t *testing.T) {
	ok := "amqp://guest:guest@127.0.0.1:5672/"
	cases := []struct {
		name string
		url  string
		opts []lavinmq.Option
	}{
		{"empty url", "", nil},
		{"blank url", "   ", nil},
		{"unknown scheme", "http://127.0.0.1:5672/", nil},
		{"no scheme", "127.0.0.1:5672", nil},
		{"no host", "amqp:///vhost", nil},
		{"malformed", "amqp://user:pa%zz@host/", nil},
		{"bad failover url", ok, []lavinmq.Option{lavinmq.WithFailover("nats://x")}},
		{"zero initial delay", ok, []lavinmq.Option{lavinmq.WithReconnectDelay(0, time.Second)}},
		{"max below initial", ok, []lavinmq.Option{lavinmq.WithReconnectDelay(time.Second, time.Millisecond)}},
		{"multiplier below 1", ok, []lavinmq.Option{lavinmq.WithReconnectMultiplier(0.5)}},
		{"jitter 1", ok, []lavinmq.Option{lavinmq.WithReconnectJitter(1)}},
		{"negative jitter", ok, []lavinmq.Option{lavinmq.WithReconnectJitter(-0.1)}},
		{"zero health interval", ok, []lavinmq.Option{lavinmq.WithHealthCheckInterval(0)}},
		{"sub-second heartbeat", ok, []lavinmq.Option{lavinmq.WithHeartbeat(500 * time.Millisecond)}},
		{"zero dial timeout", ok, []lavinmq.Option{lavinmq.WithDialTimeout(0)}},
		{"zero write timeout", ok, []lavinmq.Option{lavinmq.WithWriteTimeout(0)}},
		{"nil logger", ok, []lavinmq.Option{lavinmq.WithLogger(nil)}},
		{"nil hook", ok, []lavinmq.Option{lavinmq.WithHooks(nil)}},
		{"nil option", ok, []lavinmq.Option{nil}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := lavinmq.New(tc.url, tc.opts...)
			if err == nil {
				c.Close()
				t.Fatal("New accepted bad input")
			}
			if !errors.Is(err, lavinmq.ErrInvalidConfig) {
				t.Fatalf("error %v does not wrap ErrInvalidConfig", err)
			}
		})
	}
}

func TestPasswordNeverInLogsOrErrors(t *testing.T) {
	const secret = "s3cr3t-Pa55"
	var logs testbroker.LogBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	// Errors from New.
	for _, u := range []string{
		"http://user:" + secret + "@127.0.0.1/",
		"amqp://user:" + secret + "@/",
		"amqp://user:" + secret + "@127.0.0.1:99999999/",
		"amqp://user:" + secret + "@127.0.0.1/%zz",
	} {
		_, err := lavinmq.New(u)
		if err == nil {
			t.Fatalf("New(%q) accepted a bad URL", u)
		}
		if strings.Contains(err.Error(), secret) {
			t.Fatalf("error leaks the password: %v", err)
		}
	}

	// Log lines and hook errors while failing to connect: wrong password
	// against the real broker (403) and a refused port.
	ev := &events{}
	bad := strings.Replace(testbroker.URL(t), "guest:guest", "guest:"+secret, 1)
	c, err := lavinmq.New(bad, lavinmq.WithFailover("amqp://u:"+secret+"@127.0.0.1:1/"),
		lavinmq.WithLogger(logger), lavinmq.WithHooks(ev), lavinmq.WithReconnectDelay(10*time.Millisecond, 50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	testbroker.Eventually(t, 10*time.Second, "four failed attempts", func() bool { _, _, n := ev.counts(); return n >= 4 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	werr := c.WaitConnected(ctx)
	cancel()
	c.Close()
	if werr == nil {
		t.Fatal("connected with a wrong password")
	}
	out := logs.String()
	if !strings.Contains(out, "connect failed") {
		t.Fatalf("no failed attempt logged:\n%s", out)
	}
	if strings.Contains(out, secret) {
		t.Fatalf("log leaks the password:\n%s", out)
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	for _, a := range ev.attempts {
		if strings.Contains(a.Err.Error(), secret) || strings.Contains(a.Endpoint, secret) {
			t.Fatalf("hook event leaks the password: %+v", a)
		}
	}
}
