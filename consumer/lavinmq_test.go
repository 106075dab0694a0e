package consumer_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
)

// lavinMQURL returns the URL of the LavinMQ broker for the tests that check
// LavinMQ's own behaviour. They are skipped when LAVINMQ_TEST_LAVINMQ_URL is
// unset: the one exception to "never skip", because the RabbitMQ run of the
// suite has no LavinMQ; the LavinMQ run (scripts/lavinmq.sh) sets it.
func lavinMQURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("LAVINMQ_TEST_LAVINMQ_URL")
	if u == "" {
		t.Skip("LAVINMQ_TEST_LAVINMQ_URL is not set: this test needs a LavinMQ broker (start one with scripts/lavinmq.sh and export its URL)")
	}
	return u
}

// TestLavinMQStreamNumbering: LavinMQ numbers stream offsets from 1 (RabbitMQ
// from 0), and subscribing from offset 4 starts at the message whose
// x-stream-offset is 4, the fourth; the consumer's offset+1 resume is right
// on both because each broker takes back the numbers it gives.
func TestLavinMQStreamNumbering(t *testing.T) {
	u := lavinMQURL(t)
	q := streamQueue(t, u, 20)
	c := newClient(t, u)
	for _, tc := range []struct {
		from      any
		wantFirst int64
		wantBody  string
	}{{"first", 1, "0"}, {int64(4), 4, "3"}} {
		k, err := consumer.New(c, q, consumer.WithStreamOffset(tc.from), consumer.WithPrefetch(5))
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		first, body := int64(-1), ""
		stop := run(t, k, func(_ context.Context, d consumer.Delivery) consumer.Action {
			mu.Lock()
			defer mu.Unlock()
			if first < 0 {
				first, body = d.StreamOffset, string(d.Body)
			}
			return consumer.Ack
		})
		testbroker.Eventually(t, 10*time.Second, "a delivery", func() bool { mu.Lock(); defer mu.Unlock(); return first >= 0 })
		_ = stop()
		if first != tc.wantFirst || body != tc.wantBody {
			t.Fatalf("LavinMQ from %v: first delivery offset %d body %q, want offset %d body %q", tc.from, first, body, tc.wantFirst, tc.wantBody)
		}
		t.Logf("LavinMQ from %v: first delivery has x-stream-offset %d and is message #%s (0-based)", tc.from, first, body)
	}
}

// TestLavinMQStreamResumesAfterCut: the 10 000-message stream test on
// LavinMQ, with its connection cut twice by a proxy (no rabbitmqctl there).
func TestLavinMQStreamResumesAfterCut(t *testing.T) {
	u := lavinMQURL(t)
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, testbroker.Name(t, "lavinmq-proxy"), "127.0.0.1:0", pu.Host)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	via := *pu
	via.Host = p.Listen
	cut := func(t testing.TB) {
		p.Stop()
		time.Sleep(100 * time.Millisecond)
		if err := p.Start(); err != nil {
			t.Fatalf("restart proxy: %v", err)
		}
	}
	q, last := consumeStreamAcross(t, via.String(), 1, disruption{at: 3000, hold: true, do: cut}, disruption{at: 6000, hold: true, do: cut})
	streamStartsAt(t, u, q, last-4999, last-4999)
}

// TestLavinMQDeliveryCountAndLimit: on a LavinMQ queue with x-delivery-limit
// (without one LavinMQ 2.9 sends no x-delivery-count at all, and the
// consumer's own record counts) the header is left out of the first delivery
// and is then 1, 2: deliveries before this one, as on RabbitMQ's quorum
// queues. WithMaxRedeliveries(3) handles a failing message 3 times, then it is
// dead-lettered (the queue's own limit, 10, is not reached).
func TestLavinMQDeliveryCountAndLimit(t *testing.T) {
	u := lavinMQURL(t)
	conn, err := amqp.Dial(u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, dlq := testbroker.Name(t, "q"), testbroker.Name(t, "dlq")
	if _, err := ch.QueueDeclare(dlq, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(q, false, false, false, false, amqp.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq, "x-delivery-limit": int64(10)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = ch.QueueDelete(q, false, false, false); _, _ = ch.QueueDelete(dlq, false, false, false) })
	if err := ch.PublishWithContext(context.Background(), "", q, false, false, amqp.Publishing{Body: []byte("fails")}); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, u)
	k, err := consumer.New(c, q, consumer.WithMaxRedeliveries(3))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var counts []string
	run(t, k, func(_ context.Context, d consumer.Delivery) consumer.Action {
		mu.Lock()
		defer mu.Unlock()
		if v, ok := d.Headers["x-delivery-count"]; ok {
			counts = append(counts, fmt.Sprintf("%T(%v)", v, v))
		} else {
			counts = append(counts, "absent")
		}
		return consumer.NackRequeue
	})
	testbroker.Eventually(t, 15*time.Second, "the message dead-lettered", func() bool {
		dq, err := ch.QueueDeclarePassive(dlq, false, false, false, false, nil)
		return err == nil && dq.Messages == 1
	})
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(counts) != 3 || counts[0] != "absent" || !strings.HasSuffix(counts[1], "(1)") || !strings.HasSuffix(counts[2], "(2)") {
		t.Fatalf("x-delivery-count per call %v, want 3 calls: the first without the header, then 1 and 2", counts)
	}
	t.Logf("LavinMQ x-delivery-count on the 3 calls: %v; stats %+v", counts, k.Stats())
}
