//go:build chaos

package chaos

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/buffer"
	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

// TestChaosCorkedBurstsThroughBrokerRestart restarts the broker while a
// Confirm producer publishes in full corked bursts (500 messages every 50
// ms, so the publisher always finds a backlog): nothing is lost, nothing is
// dropped, first deliveries come in publish order and the re-sent messages
// in their original order.
func TestChaosCorkedBurstsThroughBrokerRestart(t *testing.T) {
	testbroker.RequireManaged(t)
	testbroker.EnsureUpAtEnd(t)
	url := testbroker.URL(t)
	q := testbroker.Name(t, "cork-restart")
	deleteQueueAtEnd(t, url, q)
	ev := &connEvents{}
	c := newClient(t, url, lavinmq.WithReconnectDelay(100*time.Millisecond, 2*time.Second), lavinmq.WithHooks(ev))
	const capacity = 400_000
	s := newStream(capacity)
	p := newProducer(t, c, q, s, producer.WithDeclare(nil), producer.WithBufferSize(capacity), producer.WithPolicy(buffer.Raise))
	ctx := context.Background()
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	var next uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // 500 every 50 ms until stop
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			for range 500 {
				if next == capacity {
					return
				}
				if err := p.Publish(ctx, producer.Message{Body: seqBody(next)}); err != nil {
					t.Errorf("publish %d: %v", next, err)
					return
				}
				next++
			}
		}
	}()
	time.Sleep(time.Second)
	took := testbroker.Restart(t)
	time.Sleep(time.Second)
	close(stop)
	<-done
	total := int(next)
	flush(t, p, 2*time.Minute)
	st := p.Stats()
	if st.Dropped != 0 || st.Confirmed != uint64(total) {
		t.Fatalf("want all %d confirmed, none dropped: %+v", total, st)
	}
	if ev.snapshot().disconnected == 0 {
		t.Fatal("the restart did not take the connection down: the test proves nothing")
	}
	order := consumeSeqs(t, url, q, total)
	seen := make([]bool, total)
	first, lastDup, dups := uint64(0), int64(-1), 0
	for _, m := range order {
		if !seen[m] {
			if m != first {
				t.Fatalf("first delivery of %d where %d was expected: order broken", m, first)
			}
			seen[m] = true
			first++
			continue
		}
		dups++
		if int64(m) <= lastDup {
			t.Fatalf("re-sent %d arrived after re-sent %d: re-send order broken", m, lastDup)
		}
		lastDup = int64(m)
	}
	if int(first) != total {
		t.Fatalf("received %d distinct of %d", first, total)
	}
	t.Logf("restart took %v; %d published in corked bursts, all confirmed and received, %d re-sent, %d duplicates, order kept", took, total, st.Resent, dups)
}

// consumeSeqs reads want distinct sequence numbers (and any duplicates that
// follow within 500 ms) from queue with a raw consumer, in arrival order.
func consumeSeqs(t *testing.T, url, queue string, want int) []uint64 {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Qos(1000, 0, false); err != nil {
		t.Fatal(err)
	}
	ds, err := ch.Consume(queue, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var order []uint64
	distinct := map[uint64]bool{}
	deadline := time.After(2 * time.Minute)
	for {
		var idle <-chan time.Time
		if len(distinct) >= want {
			idle = time.After(500 * time.Millisecond)
		}
		select {
		case d, ok := <-ds:
			if !ok {
				t.Fatalf("consumer closed after %d", len(order))
			}
			m := binary.BigEndian.Uint64(d.Body)
			if m >= uint64(want) {
				t.Fatalf("message %d was never published", m)
			}
			order = append(order, m)
			distinct[m] = true
		case <-idle:
			return order
		case <-deadline:
			t.Fatalf("received %d distinct of %d in 2 minutes", len(distinct), want)
		}
	}
}
