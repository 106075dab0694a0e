package main

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, testbroker.LeakOptions()...) }

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestFailoverMovesToTheNextURL gives the example two endpoints (two proxies
// to the broker), cuts the first, and checks the client moved to the second.
func TestFailoverMovesToTheNextURL(t *testing.T) {
	a, b := testbroker.NewProxy(t), testbroker.NewProxy(t)
	q := testbroker.Name(t, "failover")
	var out syncBuf
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{a.URL, b.URL}, q, &out) }()
	defer func() {
		ch := testbroker.Raw(t)
		_, _ = ch.QueueDelete(q, false, false, false)
	}()
	hostA := a.URL[strings.Index(a.URL, "@")+1 : len(a.URL)-1]
	hostB := b.URL[strings.Index(b.URL, "@")+1 : len(b.URL)-1]
	testbroker.Eventually(t, 10*time.Second, "connected to the first URL", func() bool {
		return strings.Contains(out.String(), "connected to "+hostA)
	})
	a.Disable()
	testbroker.Eventually(t, 15*time.Second, "moved to the second URL", func() bool {
		return strings.Contains(out.String(), "connected to "+hostB)
	})
	time.Sleep(1500 * time.Millisecond) // publish a little on the second endpoint
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "lost "+hostA) {
		t.Fatalf("the loss of the first endpoint was not reported:\n%s", out.String())
	}
	// The queue is the quorum queue the example says it is: declaring it
	// again as one is equivalent (a classic queue would get 406).
	if _, err := testbroker.Raw(t).QueueDeclare(q, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatalf("the example's queue is not a quorum queue: %v", err)
	}
	t.Logf("example output:\n%s", out.String())
}
