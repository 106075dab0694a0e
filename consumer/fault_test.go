package consumer_test

import (
	"context"
	"testing"
	"time"

	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

// Fault tests put an in-process toxiproxy between the consumer's client and the broker.

func TestConsumerSurvivesProxyFaults(t *testing.T) {
	cases := []struct {
		name  string
		fault func(p *testbroker.Proxy)
	}{
		{"reset_peer", func(p *testbroker.Proxy) {
			p.ResetPeer()
			// reset_peer fires on the next byte: wait for a heartbeat to cross. New connections are reset too.
			time.Sleep(1500 * time.Millisecond)
			p.RemoveToxic("reset")
		}},
		{"blackhole", func(p *testbroker.Proxy) {
			p.Blackhole()
			time.Sleep(4 * time.Second) // over 3 heartbeats: detected while blackholed
			p.Restore()
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := rawQueue(t)
			p := testbroker.NewProxy(t)
			conns := &connectedAt{}
			c := newClient(t, p.URL, lavinmq.WithHeartbeat(time.Second), lavinmq.WithDialTimeout(time.Second), lavinmq.WithHooks(conns))
			k, err := consumer.New(c, q, consumer.WithPrefetch(10))
			if err != nil {
				t.Fatal(err)
			}
			var got received
			run(t, k, func(_ context.Context, d consumer.Delivery) consumer.Action { got.add(d); return consumer.Ack })
			before := bodies("before", 5)
			publish(t, q, before...) // straight to the broker, not through the proxy
			testbroker.Eventually(t, 10*time.Second, "messages before the fault", func() bool { return got.has(before...) })

			faultAt := time.Now()
			tc.fault(p)
			during := bodies("during", 5)
			publish(t, q, during...)
			testbroker.Eventually(t, 20*time.Second, "resubscribe after the fault", func() bool { return k.Stats().Resubscribes >= 1 })
			after := bodies("after", 5)
			publish(t, q, after...)
			testbroker.Eventually(t, 10*time.Second, "messages published after the fault", func() bool { return got.has(append(during, after...)...) })
			rec := conns.last()
			t.Logf("%s: reconnected %v after the fault began, first delivery %v after the reconnect; stats %+v",
				tc.name, rec.Sub(faultAt), got.firstAfter(rec, set(append(during, after...))).Sub(rec), k.Stats())
		})
	}
}
