//go:build chaos

package chaos

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/c3ecadf2/lavinmq-go/buffer"
	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

type toxCase struct {
	name    string
	mode    producer.Mode
	policy  buffer.Policy
	bufSize int
	total   int
	rate    int
	// fault runs the network fault while the publisher runs and returns the
	// recovery time of each fault (measured from its end) and notes.
	fault func(t *testing.T, px *testbroker.Proxy, s *stream) ([]time.Duration, []string)
}

// TestChaosToxiproxy puts an in-process toxiproxy between the clients
// (producer and consumer, each its own client, heartbeat 1s) and the broker
// and runs one network fault per subtest, each reported as its own row:
// latency with jitter, a bandwidth limit, slow_close with the connections
// closed under it, and a TCP reset every few hundred milliseconds (in
// Confirm and in FireAndForget mode).
func TestChaosToxiproxy(t *testing.T) {
	for _, tc := range []toxCase{
		{name: "latency", mode: producer.Confirm, policy: buffer.DropOldest, bufSize: 10_000, total: 6_000, rate: 500, fault: latencyFault},
		{name: "bandwidth", mode: producer.Confirm, policy: buffer.Raise, bufSize: 1_000, total: 6_000, rate: 500, fault: bandwidthFault},
		{name: "slow_close", mode: producer.Confirm, policy: buffer.Block, bufSize: 5_000, total: 6_000, rate: 500, fault: slowCloseFault},
		{name: "reset_peer", mode: producer.Confirm, policy: buffer.DropOldest, bufSize: 10_000, total: 8_000, rate: 500, fault: resetFault},
		{name: "reset_peer", mode: producer.FireAndForget, policy: buffer.DropOldest, bufSize: 10_000, total: 8_000, rate: 500, fault: resetFault},
	} {
		t.Run(tc.name+"/"+tc.mode.String(), func(t *testing.T) { runToxic(t, tc) })
	}
}

func runToxic(t *testing.T, tc toxCase) {
	t0 := time.Now()
	url := testbroker.URL(t)
	px := testbroker.NewProxy(t)
	q := testbroker.Name(t, "tox")
	deleteQueueAtEnd(t, url, q)

	opts := []lavinmq.Option{lavinmq.WithHeartbeat(time.Second), lavinmq.WithDialTimeout(2 * time.Second),
		lavinmq.WithReconnectDelay(50*time.Millisecond, time.Second)}
	pev, cev := &connEvents{}, &connEvents{}
	pc := newClient(t, px.URL, append(opts, lavinmq.WithHooks(pev), lavinmq.WithConnectionName("chaos-tox-producer"))...)
	cc := newClient(t, px.URL, append(opts, lavinmq.WithHooks(cev), lavinmq.WithConnectionName("chaos-tox-consumer"))...)
	s := newStream(tc.total)
	p := newProducer(t, pc, q, s, producer.WithMode(tc.mode), producer.WithDeclare(nil), producer.WithPolicy(tc.policy), producer.WithBufferSize(tc.bufSize))
	k, stopConsumer := startConsumer(t, cc, q, s, consumer.WithDeclare(nil))

	pubCtx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	pubDone := make(chan struct{})
	go func() { defer close(pubDone); s.publish(pubCtx, t, p, ratePacing(tc.rate)) }()
	t.Cleanup(func() { cancel(); <-pubDone })

	if _, ok := s.awaitRecovery(time.Now(), 30*time.Second, true); !ok {
		t.Fatalf("no confirm and delivery within 30s of the start")
	}
	time.Sleep(time.Second)
	recs, notes := tc.fault(t, px, s)

	s.hurry.Store(true)
	select {
	case <-pubDone:
	case <-time.After(time.Minute):
		t.Fatalf("the publisher loop did not finish")
	}
	flush(t, p, time.Minute)
	wait := time.Minute
	if tc.mode == producer.FireAndForget {
		wait = 5 * time.Second // what was lost does not come
	}
	if !s.waitReceived(wait) && tc.mode == producer.Confirm {
		t.Errorf("%d accepted messages not received after %v", s.missing(), wait)
	}
	stopConsumer()

	row := Row{Scenario: "toxiproxy_" + tc.name, Mode: tc.mode.String(), Policy: tc.policy.String(), Faults: len(recs), RecoveryMs: durationsMs(recs)}
	fill(t, &row, s, p.Stats())
	for _, n := range notes {
		appendNote(&row, "%s", n)
	}
	pe, ce := pev.snapshot(), cev.snapshot()
	appendNote(&row, "reconnects producer %d consumer %d; consumer resubscribes %d, stale acks %d; resent %d",
		len(pe.reconnects), len(ce.reconnects), k.Stats().Resubscribes, k.Stats().StaleAcks, p.Stats().Resent)
	if tc.mode == producer.FireAndForget {
		appendNote(&row, "lost %d (allowed, at-most-once): messages handed to a socket that the reset killed before the broker "+
			"read them (AMQP gives no way to know)", row.Lost)
	}
	row.DurationS = time.Since(t0).Seconds()
	checkConfirmLoss(t, &row)
	record(t, row)
}

// latencyFault adds 50ms ± 40ms of latency in both directions for 5s.
func latencyFault(t *testing.T, px *testbroker.Proxy, s *stream) ([]time.Duration, []string) {
	attrs := map[string]any{"latency": 50, "jitter": 40}
	px.AddToxic("lat-up", "latency", "upstream", attrs)
	px.AddToxic("lat-down", "latency", "downstream", attrs)
	before := time.Duration(s.maxGap.Load())
	time.Sleep(5 * time.Second)
	during := time.Duration(s.maxGap.Load())
	px.RemoveToxic("lat-up")
	px.RemoveToxic("lat-down")
	rec := mustRecover(t, s, time.Now(), 30*time.Second, "after the latency was removed")
	return []time.Duration{rec}, []string{fmt.Sprintf("50ms±40ms each way for 5s; max confirm gap before %vms, with latency %vms",
		before.Milliseconds(), during.Milliseconds())}
}

// bandwidthFault limits the client-to-broker direction to 8 KB/s for 5s,
// far below what 500 msg/s need: the producer's buffer fills and Raise refuses.
func bandwidthFault(t *testing.T, px *testbroker.Proxy, s *stream) ([]time.Duration, []string) {
	px.AddToxic("bw-up", "bandwidth", "upstream", map[string]any{"rate": 8})
	rejBefore := s.rejected.Load()
	time.Sleep(5 * time.Second)
	rej := s.rejected.Load() - rejBefore
	px.RemoveToxic("bw-up")
	rec := mustRecover(t, s, time.Now(), 30*time.Second, "after the bandwidth limit was removed")
	return []time.Duration{rec}, []string{fmt.Sprintf("upstream 8 KB/s for 5s; Raise refused %d publishes during it "+
		"(rejected counts also those refused while the backlog drained and the loop caught up)", rej)}
}

// slowCloseFault delays every close through the proxy by 3s, then closes the
// connections twice: once from the broker (close_all_connections, an AMQP
// close that arrives at once) and once by cutting the proxy for 1s (the TCP
// close is what is delayed; heartbeats notice first).
func slowCloseFault(t *testing.T, px *testbroker.Proxy, s *stream) ([]time.Duration, []string) {
	px.AddToxic("slow-up", "slow_close", "upstream", map[string]any{"delay": 3000})
	px.AddToxic("slow-down", "slow_close", "downstream", map[string]any{"delay": 3000})
	testbroker.CloseAllConnections(t)
	rec1 := mustRecover(t, s, time.Now(), 30*time.Second, "after close_all_connections")
	time.Sleep(2 * time.Second)
	px.Disable()
	time.Sleep(time.Second)
	px.Enable()
	rec2 := mustRecover(t, s, time.Now(), 30*time.Second, "after the proxy came back")
	px.RemoveToxic("slow-up")
	px.RemoveToxic("slow-down")
	return []time.Duration{rec1, rec2}, []string{"slow_close 3s both ways; faults: close_all_connections, proxy down 1s"}
}

// resetFault resets every connection through the proxy (TCP RST at the next
// byte the client sends, new connections included) for 50ms, every 350ms, 12 times.
func resetFault(t *testing.T, px *testbroker.Proxy, s *stream) ([]time.Duration, []string) {
	var recs []time.Duration
	for i := range 12 {
		px.ResetPeer()
		time.Sleep(50 * time.Millisecond)
		px.RemoveToxic("reset")
		recs = append(recs, mustRecover(t, s, time.Now(), 30*time.Second, fmt.Sprintf("after reset %d", i+1)))
		time.Sleep(300 * time.Millisecond)
	}
	return recs, []string{"reset_peer for 50ms every ~350ms, 12 times"}
}

func mustRecover(t *testing.T, s *stream, since time.Time, timeout time.Duration, what string) time.Duration {
	t.Helper()
	rec, ok := s.awaitRecovery(since, timeout, true)
	if !ok {
		t.Fatalf("no confirm and delivery within %v %s", timeout, what)
	}
	return rec
}
