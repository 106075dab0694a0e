//go:build chaos

package chaos

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/c3ecadf2/lavinmq-go/buffer"
	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

// requireScriptBroker fails unless scripts/broker.sh (with the BROKER_NAME
// and BROKER_PORT of the environment) manages the broker of LAVINMQ_TEST_URL:
// restarting another one would be wrong twice over.
func requireScriptBroker(t *testing.T) {
	t.Helper()
	port := os.Getenv("BROKER_PORT")
	if port == "" {
		port = "5680" // scripts/broker.sh's default
	}
	if hp := testbroker.HostPort(t); !strings.HasSuffix(hp, ":"+port) {
		t.Fatalf("%s points at %s but scripts/broker.sh manages the broker on port %s: "+
			"export the BROKER_NAME and BROKER_PORT of the broker under test (make chaos does)", testbroker.EnvURL, hp, port)
	}
	if _, _, err := tryScript(t, 30*time.Second, "broker.sh", "status"); err != nil {
		t.Fatalf("scripts/broker.sh status: the broker is not running: %v", err)
	}
}

// ensureBrokerUpAtEnd starts the broker again at the end of the test if a
// failure left it down.
func ensureBrokerUpAtEnd(t *testing.T) {
	t.Cleanup(func() {
		if _, _, err := tryScript(t, 30*time.Second, "broker.sh", "status"); err == nil {
			return
		}
		t.Logf("the broker is down at the end of the test: starting it")
		if out, _, err := tryScript(t, 2*time.Minute, "broker.sh", "start"); err != nil {
			t.Errorf("scripts/broker.sh start: %v\n%s", err, out)
		}
	})
}

// TestChaosBrokerRestart restarts the broker five times (scripts/broker.sh
// restart: a clean stop, then a start; about 12 s each) while a Confirm
// producer publishes persistent messages to a durable queue and an SDK
// consumer consumes them. Every accepted message must be received or
// reported dropped.
func TestChaosBrokerRestart(t *testing.T) {
	runRestart(t, producer.Confirm, 5, 20_000, 200)
}

// TestChaosBrokerRestartFireAndForget is the same with FireAndForget
// (transient messages, no confirms) and two restarts: loss is expected and
// reported, not failed.
func TestChaosBrokerRestartFireAndForget(t *testing.T) {
	runRestart(t, producer.FireAndForget, 2, 10_000, 200)
}

func runRestart(t *testing.T, mode producer.Mode, restarts, total, rate int) {
	requireScriptBroker(t)
	ensureBrokerUpAtEnd(t)
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
		_, d := script(t, 3*time.Minute, "broker.sh", "restart")
		since := time.Now()
		rec, ok := s.awaitRecovery(since, time.Minute, true)
		if !ok {
			t.Fatalf("restart %d: no confirm and delivery within 1m of the broker answering again", i+1)
		}
		recs = append(recs, rec)
		took = append(took, fmt.Sprintf("%.1fs", d.Seconds()))
		t.Logf("restart %d took %v; recovered %v after the broker answered", i+1, d.Round(time.Millisecond), rec.Round(time.Millisecond))
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

	row := Row{Scenario: "broker_restart", Mode: mode.String(), Policy: buffer.DropOldest.String(), Faults: restarts, RecoveryMs: durationsMs(recs)}
	fill(t, &row, s, p.Stats())
	e := ev.snapshot()
	appendNote(&row, "scripts/broker.sh restart x%d took %s", restarts, strings.Join(took, ","))
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
