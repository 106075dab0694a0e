package lavinmq_test

import (
	"context"
	"testing"
	"time"

	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

// Fault tests put an in-process toxiproxy between the client and the broker.

func TestClientRecoversFromResetPeer(t *testing.T) {
	p := testbroker.NewProxy(t)
	c, ev := newClient(t, p.URL, lavinmq.WithHeartbeat(time.Second))
	waitConnected(t, c, 10*time.Second)
	detect, reconnect := reconnectAfter(t, c, ev, func() {
		p.ResetPeer()
		// reset_peer fires on the next byte: wait for a heartbeat to cross. New connections are reset too.
		time.Sleep(1500 * time.Millisecond)
		p.RemoveToxic("reset")
	})
	t.Logf("reset_peer: detected %v after the reset, reconnected %v after detection", detect, reconnect)
}

func TestClientDetectsBlackholeByHeartbeat(t *testing.T) {
	p := testbroker.NewProxy(t)
	c, ev := newClient(t, p.URL, lavinmq.WithHeartbeat(time.Second), lavinmq.WithDialTimeout(time.Second))
	waitConnected(t, c, 10*time.Second)
	detect, reconnect := reconnectAfter(t, c, ev, func() {
		p.Blackhole()
		time.Sleep(5 * time.Second) // longer than 3 heartbeats: the loss must be noticed while blackholed
		p.Restore()
	})
	if detect > 5*time.Second {
		t.Fatalf("blackhole detected only after %v, after the toxic was removed; heartbeats did not detect it", detect)
	}
	t.Logf("heartbeat path (1s heartbeat, blackhole): detected %v after the blackhole began, reconnected %v after detection", detect, reconnect)
}

func TestClientSurvivesLatency(t *testing.T) {
	p := testbroker.NewProxy(t)
	c, ev := newClient(t, p.URL, lavinmq.WithHeartbeat(time.Second))
	waitConnected(t, c, 10*time.Second)
	p.AddToxic("latency", "latency", "downstream", map[string]any{"latency": 300, "jitter": 100})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	q := testbroker.Name(t, "q")
	start := time.Now()
	if _, err := c.DeclareQueue(ctx, lavinmq.Queue{Name: q, AutoDelete: true}); err != nil {
		t.Fatalf("declare under latency: %v", err)
	}
	t.Logf("declare under 300±100ms latency took %v", time.Since(start))
	p.RemoveToxic("latency")
	if _, disc, _ := ev.counts(); disc != 0 {
		t.Fatalf("latency below the heartbeat timeout caused %d disconnects", disc)
	}
	// And the client still recovers from a cut after the latency is gone.
	reconnectAfter(t, c, ev, func() {
		p.ResetPeer()
		time.Sleep(1500 * time.Millisecond)
		p.RemoveToxic("reset")
	})
}
