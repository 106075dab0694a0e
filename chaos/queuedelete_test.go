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

// TestChaosQueueDeleted deletes the queue (through a raw channel) three times
// under a producer and a consumer that both declared it with WithDeclare. The
// consumer gets basic.cancel, declares the queue again and resubscribes; the
// producer's messages published while the queue is gone come back as
// Unroutable (mandatory) and are reported dropped with that reason; then new
// messages arrive again.
//
// Deleting a queue destroys what it holds; that is the operator's doing, not
// a client loss. So each deletion happens when the queue holds no confirmed
// message the consumer has not seen: the publisher loop pauses, the producer
// flushes, the consumer catches up, the queue is deleted, and publishing
// resumes at once (into the gap before the consumer declares the queue again).
func TestChaosQueueDeleted(t *testing.T) {
	const total, rate, deletions = 10_000, 500, 3
	t0 := time.Now()
	url := testbroker.URL(t)
	q := testbroker.Name(t, "qdel")
	deleteQueueAtEnd(t, url, q)

	pc := newClient(t, url, lavinmq.WithConnectionName("chaos-qdel-producer"))
	cc := newClient(t, url, lavinmq.WithConnectionName("chaos-qdel-consumer"))
	s := newStream(total)
	p := newProducer(t, pc, q, s, producer.WithDeclare(nil), producer.WithPolicy(buffer.Block))
	k, stopConsumer := startConsumer(t, cc, q, s, consumer.WithDeclare(nil))

	pubCtx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	pubDone := make(chan struct{})
	go func() { defer close(pubDone); s.publish(pubCtx, t, p, ratePacing(rate)) }()
	t.Cleanup(func() { cancel(); <-pubDone })

	if _, ok := s.awaitRecovery(time.Now(), 30*time.Second, true); !ok {
		t.Fatalf("no confirm and delivery within 30s of the start")
	}
	var recs []time.Duration
	var held []int
	for i := range deletions {
		time.Sleep(2 * time.Second)
		s.paused.Store(true)
		flush(t, p, 30*time.Second)
		if !s.waitReceived(30 * time.Second) {
			t.Fatalf("deletion %d: the consumer did not catch up (%d missing)", i+1, s.missing())
		}
		n, err := deleteQueue(url, q)
		if err != nil {
			t.Fatalf("deletion %d: queue.delete: %v", i+1, err)
		}
		held = append(held, n)
		since := time.Now()
		s.resetGapClock()
		// A burst at once, racing the consumer's declaration: what reaches the
		// broker before the queue exists again is returned (Unroutable).
		s.publishN(pubCtx, t, p, 200)
		s.paused.Store(false)
		rec, ok := s.awaitRecovery(since, 30*time.Second, true)
		if !ok {
			t.Fatalf("deletion %d: no confirm and delivery within 30s", i+1)
		}
		recs = append(recs, rec)
		t.Logf("deletion %d (queue held %d): recovered in %v", i+1, n, rec.Round(time.Millisecond))
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
	if testbroker.QueueLen(t, q) < 0 {
		t.Errorf("the queue does not exist at the end: nobody declared it again")
	}

	row := Row{Scenario: "queue_deleted", Mode: producer.Confirm.String(), Policy: buffer.Block.String(), Faults: deletions, RecoveryMs: durationsMs(recs)}
	fill(t, &row, s, p.Stats())
	appendNote(&row, "deleted while the consumer was caught up (queue held %v ready), then a burst of 200 at once; consumer resubscribes %d", held, k.Stats().Resubscribes)
	if n := row.DroppedBy[producer.Unroutable.String()]; n > 0 {
		appendNote(&row, "%d published while the queue was gone: reported Unroutable, not lost", n)
	}
	if k.Stats().Resubscribes < deletions {
		t.Errorf("the consumer resubscribed %d times for %d deletions", k.Stats().Resubscribes, deletions)
	}
	row.DurationS = time.Since(t0).Seconds()
	checkConfirmLoss(t, &row)
	record(t, row)
}
