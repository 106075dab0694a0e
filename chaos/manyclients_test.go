//go:build chaos

package chaos

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/c3ecadf2/lavinmq-go/buffer"
	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

// reconnectLog records, for one client, when each connection was lost and
// when the next one was made.
type reconnectLog struct {
	mu   sync.Mutex
	lost []time.Time
	back []time.Time
	down []time.Duration
}

func (r *reconnectLog) OnDisconnected(lavinmq.DisconnectedEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lost = append(r.lost, time.Now())
}

func (r *reconnectLog) OnConnected(ev lavinmq.ConnectedEvent) {
	if !ev.Reconnect {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.back = append(r.back, time.Now())
	r.down = append(r.down, ev.Downtime)
}

// firstBackAfter returns the first reconnect after t0 and its downtime.
func (r *reconnectLog) firstBackAfter(t0 time.Time) (time.Time, time.Duration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, b := range r.back {
		if b.After(t0) {
			return b, r.down[i], true
		}
	}
	return time.Time{}, 0, false
}

// TestChaosManyClients runs 20 clients, each with a producer and a consumer
// on its own queue, all through one in-process proxy (a plain pass-through
// unless cut), with the default reconnect settings (100ms, x2, jitter 0.5).
// Two faults hit all clients at once:
//
//  1. the broker closes every connection (rabbitmqctl close_all_connections);
//  2. the proxy goes down for 1s (every connection cut, new ones refused).
//
// Everyone must recover and lose nothing. For each fault the row reports the
// spread of the reconnects: min/median/max of the downtime each client saw,
// and the time between the first and the last client back.
func TestChaosManyClients(t *testing.T) {
	const clients, perClient, rate = 20, 600, 40
	t0 := time.Now()
	url := testbroker.URL(t)
	px := testbroker.NewProxy(t)

	type member struct {
		s   *stream
		p   *producer.Producer
		k   *consumer.Consumer
		log *reconnectLog
	}
	ms := make([]member, clients)
	pubCtx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	var pubs sync.WaitGroup
	t.Cleanup(func() { cancel(); pubs.Wait() })
	for i := range ms {
		q := testbroker.Name(t, fmt.Sprintf("many%02d", i))
		deleteQueueAtEnd(t, url, q)
		m := member{s: newStream(perClient), log: &reconnectLog{}}
		c := newClient(t, px.URL, lavinmq.WithHooks(m.log), lavinmq.WithConnectionName(fmt.Sprintf("chaos-many-%02d", i)))
		m.p = newProducer(t, c, q, m.s, producer.WithDeclare(nil), producer.WithPolicy(buffer.Block), producer.WithBufferSize(1000))
		m.k, _ = startConsumer(t, c, q, m.s, consumer.WithDeclare(nil), consumer.WithPrefetch(50), consumer.WithConcurrency(1))
		ms[i] = m
	}
	for i := range ms {
		pubs.Add(1)
		go func() { defer pubs.Done(); ms[i].s.publish(pubCtx, t, ms[i].p, ratePacing(rate)) }()
	}
	allRecovered := func(since time.Time, what string) time.Duration {
		var worst time.Duration
		for i := range ms {
			rec, ok := ms[i].s.awaitRecovery(since, 60*time.Second, true)
			if !ok {
				t.Fatalf("client %d: no confirm and delivery within 60s %s", i, what)
			}
			worst = max(worst, rec)
		}
		return worst
	}
	allRecovered(time.Now(), "of the start")
	time.Sleep(2 * time.Second)

	type spread struct {
		name               string
		lo, med, hi, width time.Duration
	}
	var spreads []spread
	var recs []time.Duration
	measure := func(name string, faultAt time.Time) {
		var downs []time.Duration
		var first, last time.Time
		deadline := time.Now().Add(60 * time.Second)
		for i := range ms {
			for {
				back, down, ok := ms[i].log.firstBackAfter(faultAt)
				if ok {
					downs = append(downs, down)
					if first.IsZero() || back.Before(first) {
						first = back
					}
					if back.After(last) {
						last = back
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: client %d did not reconnect within 60s", name, i)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		lo, med, hi := percentiles(downs)
		sp := spread{name: name, lo: lo, med: med, hi: hi, width: last.Sub(first)}
		spreads = append(spreads, sp)
		t.Logf("%s: %d clients reconnected; downtime min %v median %v max %v; first to last back %v", name, len(downs),
			lo.Round(time.Millisecond), med.Round(time.Millisecond), hi.Round(time.Millisecond), sp.width.Round(time.Millisecond))
	}

	// Fault 1: the broker closes every connection. Recovery counts from the
	// first connection lost (rabbitmqctl itself takes a while to start).
	at := time.Now()
	testbroker.CloseAllConnections(t)
	measure("close_all_connections", at)
	firstLost := time.Time{}
	for i := range ms {
		ms[i].log.mu.Lock()
		for _, l := range ms[i].log.lost {
			if l.After(at) && (firstLost.IsZero() || l.Before(firstLost)) {
				firstLost = l
			}
		}
		ms[i].log.mu.Unlock()
	}
	recs = append(recs, allRecovered(firstLost, "after close_all_connections"))
	time.Sleep(2 * time.Second)

	// Fault 2: the broker is unreachable for 1s.
	at = time.Now()
	px.Disable()
	time.Sleep(time.Second)
	px.Enable()
	back := time.Now()
	measure("proxy_down_1s", at)
	recs = append(recs, allRecovered(back, "after the proxy came back"))

	for i := range ms {
		ms[i].s.hurry.Store(true)
	}
	done := make(chan struct{})
	go func() { pubs.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatalf("the publisher loops did not finish")
	}
	row := Row{Scenario: "many_clients_20", Mode: producer.Confirm.String(), Policy: buffer.Block.String(), Faults: 2, RecoveryMs: durationsMs(recs)}
	for i := range ms {
		flush(t, ms[i].p, time.Minute)
	}
	for i := range ms {
		if !ms[i].s.waitReceived(time.Minute) {
			t.Errorf("client %d: %d accepted messages not received after 1m", i, ms[i].s.missing())
		}
	}
	var resub uint64
	for i := range ms {
		fill(t, &row, ms[i].s, ms[i].p.Stats())
		resub += ms[i].k.Stats().Resubscribes
	}
	for _, sp := range spreads {
		appendNote(&row, "%s: reconnect downtime min/median/max %d/%d/%dms, first-to-last client back %dms",
			sp.name, sp.lo.Milliseconds(), sp.med.Milliseconds(), sp.hi.Milliseconds(), sp.width.Milliseconds())
	}
	appendNote(&row, "20 clients x (producer+consumer), %d msgs each, via one pass-through proxy; recovery = slowest client; consumer resubscribes %d", perClient, resub)
	row.DurationS = time.Since(t0).Seconds()
	checkConfirmLoss(t, &row)
	record(t, row)
}
