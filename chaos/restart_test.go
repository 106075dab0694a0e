//go:build chaos

package chaos

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/c3ecadf2/lavinmq-go/buffer"
	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

// TestChaosBrokerRestart restarts the broker five times (scripts/broker.sh
// restart: a clean stop, then a start; about 12 s each) while a Confirm
// producer publishes persistent messages to a durable queue and an SDK
// consumer consumes them. Every accepted message must be received or
// reported dropped.
func TestChaosBrokerRestart(t *testing.T) {
	runRestart(t, producer.Confirm, 5, 20_000, 200, false)
}

// TestChaosBrokerCrash SIGKILLs the broker three times (scripts/... kill,
// then start: a crash, data kept on disk) under the same Confirm load.
// Confirmed persistent messages must survive the crash: every accepted
// message must be received or reported dropped.
func TestChaosBrokerCrash(t *testing.T) {
	runRestart(t, producer.Confirm, 3, 12_000, 200, true)
}

// TestChaosBrokerRestartFireAndForget is the same with FireAndForget
// (transient messages, no confirms) and two restarts: loss is expected and
// reported, not failed.
func TestChaosBrokerRestartFireAndForget(t *testing.T) {
	runRestart(t, producer.FireAndForget, 2, 10_000, 200, false)
}

func runRestart(t *testing.T, mode producer.Mode, restarts, total, rate int, crash bool) {
	scenario, op := "broker_restart", "restart"
	if crash {
		scenario, op = "broker_crash", "kill+start"
	}
	testbroker.RequireManaged(t)
	testbroker.EnsureUpAtEnd(t)
	t0 := time.Now()
	url := testbroker.URL(t)
	q := testbroker.Name(t, "restart")
	deleteQueueAtEnd(t, url, q)

	ev := &connEvents{}
	reconnect := lavinmq.WithReconnectDelay(100*time.Millisecond, 2*time.Second)
	pc := newClient(t, url, reconnect, lavinmq.WithHooks(ev), lavinmq.WithConnectionName("chaos-restart-producer"))
	cc := newClient(t, url, reconnect, lavinmq.WithConnectionName("chaos-restart-consumer"))
	s := newStream(total)
	p := newProducer(t, pc, q, s, producer.WithMode(mode), producer.WithDeclare(nil), producer.WithPolicy(buffer.DropOldest))
	k, stopConsumer := startConsumer(t, cc, q, s, consumer.WithDeclare(nil))

	pubCtx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	pubDone := make(chan struct{})
	go func() { defer close(pubDone); s.publish(pubCtx, t, p, ratePacing(rate)) }()
	t.Cleanup(func() { cancel(); <-pubDone })

	if _, ok := s.awaitRecovery(time.Now(), 30*time.Second, true); !ok {
		t.Fatalf("no confirm and delivery within 30s of the start")
	}
	time.Sleep(2 * time.Second)
	var recs []time.Duration
	var took []string
	for i := range restarts {
		var d time.Duration
		if crash {
			d = testbroker.Kill(t)
			d += testbroker.Start(t)
		} else {
			d = testbroker.Restart(t)
		}
		since := time.Now()
		rec, ok := s.awaitRecovery(since, time.Minute, true)
		if !ok {
			t.Fatalf("restart %d: no confirm and delivery within 1m of the broker answering again", i+1)
		}
		recs = append(recs, rec)
		took = append(took, fmt.Sprintf("%.1fs", d.Seconds()))
		t.Logf("%s %d took %v; recovered %v after the broker answered", op, i+1, d.Round(time.Millisecond), rec.Round(time.Millisecond))
		time.Sleep(1500 * time.Millisecond)
	}
	s.hurry.Store(true)
	select {
	case <-pubDone:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the publisher loop did not finish")
	}
	flush(t, p, time.Minute)
	if !s.waitReceived(time.Minute) && mode == producer.Confirm {
		t.Errorf("%d accepted messages not received after 1m", s.missing())
	}
	if mode == producer.FireAndForget {
		time.Sleep(2 * time.Second) // nothing to wait for: let the consumer drain what there is
	}
	stopConsumer()

	row := Row{Scenario: scenario, Mode: mode.String(), Policy: buffer.DropOldest.String(), Faults: restarts, RecoveryMs: durationsMs(recs)}
	fill(t, &row, s, p.Stats())
	e := ev.snapshot()
	appendNote(&row, "scripts/%s %s x%d took %s", testbroker.ScriptName(t), op, restarts, strings.Join(took, ","))
	appendNote(&row, "client downtimes %vms", durationsMs(e.downtimes))
	appendNote(&row, "reconnect delay 100ms..2s")
	appendNote(&row, "consumer resubscribes %d", k.Stats().Resubscribes)
	if len(e.reconnects) < restarts {
		t.Errorf("producer client reconnected %d times for %d restarts", len(e.reconnects), restarts)
	}
	if mode == producer.FireAndForget && row.Lost > 0 {
		appendNote(&row, "lost %d (allowed, at-most-once): transient messages that were in the queue when the broker stopped, "+
			"and messages written to a socket that died before the broker read them", row.Lost)
	} else if mode == producer.FireAndForget {
		appendNote(&row, "no loss this time (allowed, at-most-once): a clean stop closes the connections before the node goes down "+
			"and the consumer kept the queue nearly empty; transient messages still queued at a stop, or written to a dying socket, would be lost unreported")
	}
	row.DurationS = time.Since(t0).Seconds()
	checkConfirmLoss(t, &row)
	record(t, row)
}
