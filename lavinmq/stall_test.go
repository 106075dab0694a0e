package lavinmq_test

import (
	"testing"
	"time"

	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

// TestCloseIsBoundedWhenBrokerStopsReading: a broker that stops reading the
// socket (what RabbitMQ does to a blocked connection; here a toxiproxy that
// swallows what the client sends while the broker's heartbeats still arrive
// and keep renewing the read deadline) never answers connection.close.
// Close must still return within its close timeout (2s), not when the
// broker gives up on the connection.
func TestCloseIsBoundedWhenBrokerStopsReading(t *testing.T) {
	px := testbroker.NewProxy(t)
	c, _ := newClient(t, px.URL, lavinmq.WithHeartbeat(3*time.Second))
	waitConnected(t, c, 10*time.Second)
	px.AddToxic("swallow", "timeout", "upstream", map[string]any{"timeout": 0})
	defer px.RemoveToxic("swallow")
	if !c.Connected() { // the broker's heartbeats (every 1.5s) keep arriving
		t.Fatal("connection lost while the broker's heartbeats still arrived")
	}
	t0 := time.Now()
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Close() }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("Close did not return within 1m")
	}
	took := time.Since(t0)
	t.Logf("Close took %v with a broker that does not read (close timeout %v)", took, lavinmq.DefaultCloseTimeout)
	if took > lavinmq.DefaultCloseTimeout+time.Second {
		t.Fatalf("Close took %v, over its close timeout %v (+1s)", took, lavinmq.DefaultCloseTimeout)
	}
}
