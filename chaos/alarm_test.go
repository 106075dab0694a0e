//go:build chaos

package chaos

import (
	"context"
	"testing"
	"time"

	"github.com/c3ecadf2/lavinmq-go/buffer"
	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

type alarm struct {
	scenario string
	on, off  []string // rabbitmqctl arguments
	policy   buffer.Policy
	bufSize  int
}

// TestChaosMemoryAlarm sets the memory high watermark so low that the broker
// raises its memory alarm and blocks publishing connections
// (connection.blocked), holds it a few seconds, then restores 0.4. The
// producer must pause (its buffer absorbs, DropOldest evicts from a small
// buffer) and resume; nothing accepted may be lost.
func TestChaosMemoryAlarm(t *testing.T) {
	runAlarm(t, alarm{
		scenario: "memory_alarm",
		on:       []string{"set_vm_memory_high_watermark", "0.000001"},
		off:      []string{"set_vm_memory_high_watermark", "0.4"},
		policy:   buffer.DropOldest,
		bufSize:  1000,
	})
}

// TestChaosDiskAlarm sets a free-disk limit far above the free space (disk
// alarm), then restores RabbitMQ's default 50MB. With the Block policy,
// Publish waits for room while the broker blocks the connection.
func TestChaosDiskAlarm(t *testing.T) {
	runAlarm(t, alarm{
		scenario: "disk_alarm",
		on:       []string{"set_disk_free_limit", "1000000GB"},
		off:      []string{"set_disk_free_limit", "50MB"},
		policy:   buffer.Block,
		bufSize:  1000,
	})
}

// alarmNotOnLavinMQ is why the alarm scenarios do not run on LavinMQ.
const alarmNotOnLavinMQ = "LavinMQ 2.9.1 has no runtime control of a resource alarm (no rabbitmqctl set_vm_memory_high_watermark / set_disk_free_limit; its disk limit is a boot-time setting), so connection.blocked cannot be provoked mid-test"

func runAlarm(t *testing.T, a alarm) {
	notOn(t, testbroker.LavinMQ, a.scenario, alarmNotOnLavinMQ)
	const total, rate = 10_000, 400
	t0 := time.Now()
	url := testbroker.URL(t)
	q := testbroker.Name(t, a.scenario)
	deleteQueueAtEnd(t, url, q)
	// Restore the broker even when the test fails half-way.
	t.Cleanup(func() { testbroker.Ctl(t, a.off...) })

	ev := &connEvents{}
	pc := newClient(t, url, lavinmq.WithHooks(ev), lavinmq.WithConnectionName("chaos-"+a.scenario+"-producer"))
	cc := newClient(t, url, lavinmq.WithConnectionName("chaos-"+a.scenario+"-consumer"))
	s := newStream(total)
	p := newProducer(t, pc, q, s, producer.WithDeclare(nil), producer.WithPolicy(a.policy), producer.WithBufferSize(a.bufSize))
	_, stopConsumer := startConsumer(t, cc, q, s, consumer.WithDeclare(nil))

	pubCtx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	pubDone := make(chan struct{})
	go func() { defer close(pubDone); s.publish(pubCtx, t, p, ratePacing(rate)) }()
	t.Cleanup(func() { cancel(); <-pubDone })

	if _, ok := s.awaitRecovery(time.Now(), 30*time.Second, true); !ok {
		t.Fatalf("no confirm and delivery within 30s of the start")
	}
	time.Sleep(2 * time.Second)

	alarmAt := time.Now()
	testbroker.Ctl(t, a.on...)
	sawBlocked := false // through Client.Blocked
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if b, _ := pc.Blocked(); b {
			sawBlocked = true
		}
		if sawBlocked && len(ev.snapshot().blocked) > 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	e := ev.snapshot()
	if !sawBlocked || len(e.blocked) == 0 {
		t.Errorf("the client did not report the connection blocked within 20s (Blocked()=%v, hook calls %d)", sawBlocked, len(e.blocked))
	}
	blockedAfter := time.Duration(0)
	if len(e.blocked) > 0 {
		blockedAfter = e.blocked[0].Sub(alarmAt)
	}
	confirmedBlocked := p.Stats().Confirmed
	time.Sleep(4 * time.Second)
	confirmedDuring := p.Stats().Confirmed - confirmedBlocked
	bufferedDuring := p.Stats().Buffered

	testbroker.Ctl(t, a.off...)
	since := time.Now()
	rec, ok := s.awaitRecovery(since, 30*time.Second, true)
	if !ok {
		t.Fatalf("publishing did not resume within 30s of the alarm clearing")
	}
	testbroker.Eventually(t, 10*time.Second, "the unblock hook", func() bool { return len(ev.snapshot().unblocked) > 0 })
	e = ev.snapshot()
	if b, _ := pc.Blocked(); b {
		t.Errorf("Blocked() still true after the alarm cleared")
	}

	s.hurry.Store(true)
	select {
	case <-pubDone:
	case <-time.After(time.Minute):
		t.Fatalf("the publisher loop did not finish")
	}
	flush(t, p, time.Minute)
	if !s.waitReceived(time.Minute) {
		t.Errorf("%d accepted messages not received after 1m", s.missing())
	}
	stopConsumer()

	row := Row{Scenario: a.scenario, Mode: producer.Confirm.String(), Policy: a.policy.String(), Faults: 1, RecoveryMs: durationsMs([]time.Duration{rec})}
	fill(t, &row, s, p.Stats())
	appendNote(&row, "rabbitmqctl %v", a.on)
	appendNote(&row, "connection.blocked seen %vms after the alarm was set (hook and Client.Blocked)", blockedAfter.Milliseconds())
	if len(e.unblocked) > 0 && len(e.blocked) > 0 {
		appendNote(&row, "blocked for %vms", e.unblocked[0].Sub(e.blocked[0]).Milliseconds())
	}
	appendNote(&row, "confirms during 4s blocked: %d, buffered then: %d/%d", confirmedDuring, bufferedDuring, a.bufSize)
	if e.disconnected > 0 {
		appendNote(&row, "the producer's connection was lost %d times", e.disconnected)
	}
	row.DurationS = time.Since(t0).Seconds()
	checkConfirmLoss(t, &row)
	record(t, row)
}
