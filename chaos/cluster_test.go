//go:build chaos

package chaos

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/buffer"
	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

// clusterBasePort is scripts/cluster.sh's CLUSTER_BASE_PORT: node N listens on base+N.
const clusterBasePort = 5710

// TestChaosClusterFailover boots a private 3-node RabbitMQ cluster
// (scripts/cluster.sh, ports 5711-5713), declares a quorum queue, and
// publishes in Confirm mode through a client given all three URLs (the first
// to New, the others with WithFailover). Three times, it takes down the node
// the client is connected to (the first time that is node 1, where the
// queue's leader lives): twice a clean stop (stop-node), then a crash
// (kill-node, SIGKILL), and keeps publishing; the client fails over to another
// node. The node is started again before the next fault: a 3-node quorum
// queue survives one node down, not two, and this scenario measures failover,
// not unavailability. At the end every confirmed message must be in the queue,
// counted by a raw consumer on a live node. The cluster is stopped at the end,
// even on failure.
func TestChaosClusterFailover(t *testing.T) {
	const total, rate = 10_000, 250
	testbroker.URL(t) // the suite needs the main broker too; fail loudly like every scenario
	notOn(t, testbroker.LavinMQ, "cluster_failover_quorum",
		"LavinMQ clustering needs etcd, which these machines do not have; scripts/cluster.sh is a 3-node RabbitMQ cluster")
	t0 := time.Now()
	t.Cleanup(func() {
		if out, _, err := tryScript(t, 2*time.Minute, "cluster.sh", "stop"); err != nil {
			t.Errorf("scripts/cluster.sh stop: %v\n%s", err, out)
		}
	})
	_, boot := script(t, 3*time.Minute, "cluster.sh", "start")
	out, _ := script(t, 10*time.Second, "cluster.sh", "urls")
	urls := strings.Fields(out)
	if len(urls) != 3 {
		t.Fatalf("cluster.sh urls printed %q", out)
	}
	t.Logf("cluster up in %v: %v", boot.Round(time.Millisecond), urls)

	q := testbroker.Name(t, "quorum")
	t.Cleanup(func() { // on whichever node answers
		for _, u := range urls {
			if _, err := deleteQueue(u, q); err == nil {
				return
			}
		}
	})
	ev := &connEvents{}
	c := newClient(t, urls[0], lavinmq.WithFailover(urls[1:]...), lavinmq.WithHooks(ev),
		lavinmq.WithReconnectDelay(100*time.Millisecond, 2*time.Second), lavinmq.WithConnectionName("chaos-cluster-producer"))
	s := newStream(total)
	p := newProducer(t, c, q, s, producer.WithDeclare(amqp.Table{"x-queue-type": "quorum"}),
		producer.WithPolicy(buffer.Block), producer.WithRetryBudget(50))

	pubCtx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	pubDone := make(chan struct{})
	go func() { defer close(pubDone); s.publish(pubCtx, t, p, ratePacing(rate)) }()
	t.Cleanup(func() { cancel(); <-pubDone })

	if _, ok := s.awaitRecovery(time.Now(), 30*time.Second, false); !ok {
		t.Fatalf("no confirm within 30s of the start")
	}
	time.Sleep(2 * time.Second)

	var recs []time.Duration
	var notes []string
	ops := []string{"stop-node", "stop-node", "kill-node"}
	for i, op := range ops {
		ctx, cancelConn := context.WithTimeout(context.Background(), 30*time.Second)
		cn, err := c.Connection(ctx)
		cancelConn()
		if err != nil {
			t.Fatalf("fault %d: no connection: %v", i+1, err)
		}
		node := nodeOf(t, cn.Endpoint())
		before := ev.snapshot()
		_, took := script(t, 2*time.Minute, "cluster.sh", op, strconv.Itoa(node))
		// Recovery: from the connection loss (as the node begins to stop) to
		// the reconnect, plus from the reconnect to the first confirm on it.
		testbroker.Eventually(t, time.Minute, "the client to reconnect to another node", func() bool {
			e := ev.snapshot()
			return len(e.lost) > len(before.lost) && len(e.reconnects) > len(before.reconnects)
		})
		e := ev.snapshot()
		lostAt, backAt := e.lost[len(before.lost)], e.reconnects[len(before.reconnects)]
		toConfirm, ok := s.awaitRecovery(backAt, time.Minute, false)
		if !ok {
			t.Fatalf("fault %d: no confirm within 1m of failing over from node %d", i+1, node)
		}
		rec := backAt.Sub(lostAt) + toConfirm
		ctx, cancelConn = context.WithTimeout(context.Background(), 30*time.Second)
		cn2, err := c.Connection(ctx)
		cancelConn()
		if err != nil {
			t.Fatalf("fault %d: no connection after failover: %v", i+1, err)
		}
		to := nodeOf(t, cn2.Endpoint())
		recs = append(recs, rec)
		notes = append(notes, fmt.Sprintf("%s %d (%.1fs), failed over to node %d", op, node, took.Seconds(), to))
		t.Logf("fault %d: %s %d took %v; publishing confirmed again on node %d %v after the connection was lost",
			i+1, op, node, took.Round(time.Millisecond), to, rec.Round(time.Millisecond))
		time.Sleep(2 * time.Second)
		script(t, 2*time.Minute, "cluster.sh", "start-node", strconv.Itoa(node))
		time.Sleep(2 * time.Second)
	}

	s.hurry.Store(true)
	select {
	case <-pubDone:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the publisher loop did not finish")
	}
	flush(t, p, 2*time.Minute)
	st := p.Stats()
	// Count what the queue holds with a raw consumer on a live node (all three are up again).
	drainRaw(t, urls, q, s, int(st.Confirmed))

	row := Row{Scenario: "cluster_failover_quorum", Mode: producer.Confirm.String(), Policy: buffer.Block.String(), Faults: len(ops), RecoveryMs: durationsMs(recs)}
	ta := fill(t, &row, s, st)
	for _, n := range notes {
		appendNote(&row, "%s", n)
	}
	e := ev.snapshot()
	appendNote(&row, "cluster boot %.1fs; endpoints %v; resent %d; retry budget 50", boot.Seconds(), e.endpoints, st.Resent)
	if n := row.DroppedBy[producer.Nacked.String()]; n > 0 {
		appendNote(&row, "%d nacked beyond the retry budget", n)
	}
	if ta.droppedButReceived > 0 {
		appendNote(&row, "%d reported dropped but found in the queue", ta.droppedButReceived)
	}
	appendNote(&row, "received = counted in the queue at the end by a raw consumer (no consumer during the faults)")
	row.DurationS = time.Since(t0).Seconds()
	checkConfirmLoss(t, &row)
	record(t, row)
}

// nodeOf maps a cluster endpoint (127.0.0.1:571N) to N.
func nodeOf(t *testing.T, endpoint string) int {
	t.Helper()
	_, port, err := net.SplitHostPort(endpoint)
	if err != nil {
		t.Fatalf("endpoint %q: %v", endpoint, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n-clusterBasePort < 1 || n-clusterBasePort > 3 {
		t.Fatalf("endpoint %q is not a cluster node", endpoint)
	}
	return n - clusterBasePort
}

// drainRaw consumes queue with a plain amqp091-go consumer on the first node
// that answers, feeding s, until want distinct messages arrived and nothing
// more came for 2s, or 2 minutes passed.
func drainRaw(t *testing.T, urls []string, queue string, s *stream, want int) {
	t.Helper()
	var conn *amqp.Connection
	var err error
	for _, u := range urls {
		if conn, err = amqp.DialConfig(u, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)}); err == nil {
			break
		}
	}
	if conn == nil {
		t.Fatalf("no cluster node answers: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("raw channel: %v", err)
	}
	if err := ch.Qos(1000, 0, false); err != nil {
		t.Fatalf("qos: %v", err)
	}
	ds, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		t.Fatalf("consume %s: %v", queue, err)
	}
	deadline := time.After(2 * time.Minute)
	got := 0
	for {
		var idle <-chan time.Time
		if got >= want {
			idle = time.After(2 * time.Second)
		}
		select {
		case d, ok := <-ds:
			if !ok {
				t.Fatalf("raw consumer closed")
			}
			if len(d.Body) == 8 {
				if seq := binary.BigEndian.Uint64(d.Body); seq < uint64(s.total) && s.recv[seq].Load() == 0 {
					got++
				}
			}
			s.see(d.Body)
			_ = d.Ack(false)
		case <-idle:
			return
		case <-deadline:
			t.Logf("drainRaw: timeout with %d distinct of %d confirmed", got, want)
			return
		}
	}
}
