//go:build chaos

package chaos

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/c3ecadf2/lavinmq-go/buffer"
	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

const (
	blockedBodySize     = 256 << 10
	blockedWriteTimeout = 3 * time.Second
	blockedHold         = 60 * time.Second
	blockedCloseBound   = 3 * time.Second // Close gets a 1s ctx; generous for a noisy machine
)

// dropCount counts a producer's OnDrop calls by reason.
type dropCount struct{ shutdown, other atomic.Uint64 }

func (d *dropCount) onDrop(_ producer.Message, _ string, r producer.DropReason) {
	if r == producer.Shutdown {
		d.shutdown.Add(1)
	} else {
		d.other.Add(1)
	}
}

// bigProducer makes a Block-policy producer of 256 KiB messages on c.
func bigProducer(t *testing.T, c *lavinmq.Client, queue string, bufSize int, d *dropCount) *producer.Producer {
	t.Helper()
	p, err := producer.New(c, queue, producer.WithDeclare(nil), producer.WithPolicy(buffer.Block),
		producer.WithBufferSize(bufSize), producer.OnDrop(d.onDrop), producer.WithLogger(testLogger(t)))
	if err != nil {
		t.Fatalf("producer.New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p
}

// maxCall is the longest Publish call of the scenario (Block waits in it), in ns.
var maxCall atomic.Int64

// publishAll publishes n messages of body at full speed (Block policy: each
// Publish waits for room) until done or ctx ends and returns how many were accepted.
func publishAll(ctx context.Context, p *producer.Producer, body []byte, n int) int {
	ok := 0
	for range n {
		t0 := time.Now()
		err := p.Publish(ctx, producer.Message{Body: body})
		storeMax(&maxCall, int64(time.Since(t0)))
		if err != nil {
			return ok
		}
		ok++
	}
	return ok
}

// timed runs f and returns how long it took. When f has not returned after
// bound it writes a dump of every goroutine to a file (named in the test
// log) and keeps waiting; after limit it fails the test, lifts the alarm
// (which is what f waits for) and waits for f.
func timed(t *testing.T, what string, bound, limit time.Duration, f func()) time.Duration {
	t.Helper()
	t0 := time.Now()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
		return time.Since(t0)
	case <-time.After(bound):
	}
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	path := filepath.Join(os.TempDir(), "lavinmq-go-blocked-"+what+".txt")
	if err := os.WriteFile(path, buf, 0o644); err == nil {
		t.Logf("%s has not returned after %v: goroutine dump in %s", what, bound, path)
	}
	select {
	case <-done:
	case <-time.After(limit):
		t.Errorf("%s did not return within %v; lifting the alarm", what, limit)
		testbroker.Ctl(t, "set_vm_memory_high_watermark", "0.4")
		<-done
	}
	return time.Since(t0)
}

// TestChaosBlockedLargeMessages holds a memory alarm for 60s while a
// producer publishes 256 KiB messages at full speed (Block policy, a buffer of
// 200, a write timeout of 3s). RabbitMQ stops reading a blocked connection's
// socket, so the producer's write stalls for the whole alarm: that must not be
// taken for a dead peer (no reconnect, nothing lost, everything confirmed once
// the alarm clears). During the alarm, Close of a second producer on the same
// connection (with unconfirmed messages), of a consumer on the same
// connection and of a second client whose producer is stuck in a write must
// each return within about their ctx (1s; bound 3s), reporting what they drop.
func TestChaosBlockedLargeMessages(t *testing.T) {
	notOn(t, testbroker.LavinMQ, "blocked_large_messages", alarmNotOnLavinMQ)
	const total, pre, bufSize = 400, 40, 200
	t0 := time.Now()
	maxCall.Store(0)
	url := testbroker.URL(t)
	q, q2, q3, q4 := testbroker.Name(t, "blocked"), testbroker.Name(t, "blocked2"), testbroker.Name(t, "blocked3"), testbroker.Name(t, "blocked4")
	for _, name := range []string{q, q2, q3, q4} {
		deleteQueueAtEnd(t, url, name)
	}
	off := []string{"set_vm_memory_high_watermark", "0.4"}
	t.Cleanup(func() { testbroker.Ctl(t, off...) })

	ev, ev2 := &connEvents{}, &connEvents{}
	opts := []lavinmq.Option{lavinmq.WithWriteTimeout(blockedWriteTimeout), lavinmq.WithHeartbeat(2 * time.Second)}
	pc := newClient(t, url, append(opts, lavinmq.WithHooks(ev), lavinmq.WithConnectionName("chaos-blocked"))...)
	pc2 := newClient(t, url, append(opts, lavinmq.WithHooks(ev2), lavinmq.WithConnectionName("chaos-blocked-2"))...)
	body := make([]byte, blockedBodySize) // shared by every message: the client holds one copy

	var d1, d2, d3 dropCount
	p1 := bigProducer(t, pc, q, bufSize, &d1)
	p2 := bigProducer(t, pc, q2, 50, &d2)
	p3 := bigProducer(t, pc2, q4, 50, &d3)

	// A consumer on the blocked connection (its queue stays empty).
	k, err := consumer.New(pc, q3, consumer.WithDeclare(nil), consumer.WithLogger(testLogger(t)))
	if err != nil {
		t.Fatalf("consumer.New: %v", err)
	}
	runCtx, stopRun := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() {
		runDone <- k.Run(runCtx, func(context.Context, consumer.Delivery) consumer.Action { return consumer.Ack })
	}()
	t.Cleanup(func() {
		stopRun()
		select {
		case <-runDone:
		case <-time.After(90 * time.Second):
			t.Errorf("consumer.Run did not return")
		}
	})

	// A first batch, confirmed before the alarm. Then the connections are
	// idle when the alarm is set: RabbitMQ blocks a connection (and stops
	// reading it) at its first publish after the alarm, which is then the
	// start of a full-speed burst that fills the socket buffers and stalls.
	pubCtx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	for _, p := range []*producer.Producer{p1, p3} {
		if n := publishAll(pubCtx, p, body, pre); n != pre {
			t.Fatalf("first batch: %d of %d accepted", n, pre)
		}
		flush(t, p, 30*time.Second)
	}
	alarmAt := time.Now()
	testbroker.Ctl(t, "set_vm_memory_high_watermark", "0.000001")
	pub1, pub3 := make(chan struct{}), make(chan struct{})
	go func() { defer close(pub1); publishAll(pubCtx, p1, body, total-pre) }()
	go func() { defer close(pub3); publishAll(pubCtx, p3, body, total-pre) }()
	t.Cleanup(func() { cancel(); <-pub1; <-pub3 })
	var saw1, saw2 bool
	testbroker.Eventually(t, 20*time.Second, "connection.blocked on both clients", func() bool {
		b1, _ := pc.Blocked()
		b2, _ := pc2.Blocked()
		saw1, saw2 = saw1 || b1, saw2 || b2
		if !saw1 || !saw2 {
			return false
		}
		if !b1 || !b2 {
			t.Errorf("blocked state lost during the alarm: now %v/%v, disconnects %d/%d", b1, b2, ev.snapshot().disconnected, ev2.snapshot().disconnected)
		}
		return true
	})
	blockedAfter := time.Since(alarmAt)
	// Let the stalled writes outlive the write timeout before anything else.
	time.Sleep(2 * blockedWriteTimeout)
	atBlock := p1.Stats()
	confirmedAtBlock := atBlock.Confirmed
	t.Logf("first producer %v after the alarm: %+v", time.Since(alarmAt), atBlock)

	// A second producer on the blocked connection, with unconfirmed messages.
	for range 8 {
		if err := p2.Publish(context.Background(), producer.Message{Body: body}); err != nil {
			t.Fatalf("p2 publish: %v", err)
		}
	}
	var p2Err error
	p2Close := timed(t, "producer-close", blockedCloseBound, 90*time.Second, func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		p2Err = p2.Close(ctx)
	})
	s2 := p2.Stats()
	t.Logf("second producer: Close took %v, err %v, stats %+v", p2Close, p2Err, s2)
	if p2Close > blockedCloseBound {
		t.Errorf("producer.Close with a 1s ctx took %v during the alarm (bound %v)", p2Close, blockedCloseBound)
	}
	if s2.Pending != 0 || s2.Accepted != s2.Confirmed+s2.Dropped || s2.Dropped != d2.shutdown.Load() || d2.other.Load() != 0 {
		t.Errorf("second producer: stats %+v do not account for every message (OnDrop shutdown %d, other %d)", s2, d2.shutdown.Load(), d2.other.Load())
	}
	if s2.Dropped > 0 && p2Err == nil {
		t.Errorf("second producer: Close dropped %d messages and returned nil", s2.Dropped)
	}
	if s2.Dropped == 0 {
		t.Errorf("second producer: nothing to drop (stats %+v): the scenario did not hold unconfirmed messages", s2)
	}

	// The consumer on the blocked connection.
	var kErr error
	kClose := timed(t, "consumer-close", blockedCloseBound, 90*time.Second, func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		kErr = k.Close(ctx)
	})
	var runErr error
	kRun := timed(t, "consumer-run", blockedCloseBound, 90*time.Second, func() { runErr = <-runDone; runDone <- runErr })
	t.Logf("consumer: Close took %v (err %v), Run returned %v after it (err %v)", kClose, kErr, kRun, runErr)
	if kClose > blockedCloseBound || kClose+kRun > blockedCloseBound {
		t.Errorf("consumer Close took %v and Run returned %v later during the alarm (bound %v)", kClose, kRun, blockedCloseBound)
	}

	// The second client, whose producer is stuck in a write, then its producer.
	// CloseContext(1s): the producers on the client get the 1s to settle, then
	// the connection close its 2s deadline (DefaultCloseTimeout).
	c2Close := timed(t, "client-close", blockedCloseBound+lavinmq.DefaultCloseTimeout, 90*time.Second, func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = pc2.CloseContext(ctx)
	})
	var p3Err error
	p3Close := timed(t, "producer-close-after-client", blockedCloseBound, 90*time.Second, func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		p3Err = p3.Close(ctx)
	})
	<-pub3
	s3 := p3.Stats()
	t.Logf("second client: Close took %v; its producer's Close %v (err %v), stats %+v", c2Close, p3Close, p3Err, s3)
	if c2Close > blockedCloseBound+lavinmq.DefaultCloseTimeout {
		t.Errorf("client CloseContext(1s) took %v during the alarm (bound %v)", c2Close, blockedCloseBound+lavinmq.DefaultCloseTimeout)
	}
	if s3.Pending != 0 || s3.Accepted != s3.Confirmed+s3.Dropped || s3.Dropped != d3.shutdown.Load()+d3.other.Load() {
		t.Errorf("producer of the closed client: stats %+v do not account for every message", s3)
	}

	time.Sleep(time.Until(alarmAt.Add(blockedHold)))
	e := ev.snapshot()
	confirmedDuring := p1.Stats().Confirmed - confirmedAtBlock
	if e.disconnected != 0 {
		t.Errorf("the blocked connection was dropped %d times during the %v alarm (write timeout %v)", e.disconnected, blockedHold, blockedWriteTimeout)
	}
	if b, _ := pc.Blocked(); !b {
		t.Errorf("Blocked() false before the alarm was lifted")
	}
	s1Blocked := p1.Stats()

	testbroker.Ctl(t, off...)
	unblockAt := time.Now()
	select {
	case <-pub1:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the publisher loop did not finish after the alarm (stats %+v)", p1.Stats())
	}
	flush(t, p1, 2*time.Minute)
	recovery := time.Since(unblockAt)
	s1 := p1.Stats()
	inQueue := testbroker.QueueLen(t, q)
	t.Logf("first producer: stats %+v, %d in the queue, stats while blocked %+v", s1, inQueue, s1Blocked)
	if int(s1.Accepted) != total || s1.Confirmed != s1.Accepted || s1.Dropped != 0 || d1.shutdown.Load()+d1.other.Load() != 0 {
		t.Errorf("first producer lost or dropped messages: accepted %d of %d, stats %+v", s1.Accepted, total, s1)
	}
	if uint64(inQueue) < s1.Confirmed {
		t.Errorf("%d confirmed but only %d in the queue", s1.Confirmed, inQueue)
	}
	e = ev.snapshot()

	row := Row{Scenario: "blocked_large_messages", Mode: producer.Confirm.String(), Policy: buffer.Block.String(), Faults: 1,
		RecoveryMs: durationsMs([]time.Duration{recovery}), DroppedBy: map[string]uint64{}}
	row.Published = s1.Accepted + s2.Accepted
	row.Confirmed = s1.Confirmed + s2.Confirmed
	row.Dropped = s1.Dropped + s2.Dropped
	for _, s := range []producer.Stats{s1, s2} {
		for r, n := range s.DroppedBy {
			if n > 0 {
				row.DroppedBy[r.String()] += n
			}
		}
	}
	row.Received = inQueue
	row.Lost = int(row.Published - row.Confirmed - row.Dropped)
	if uint64(inQueue) < s1.Confirmed {
		row.Lost += int(s1.Confirmed) - inQueue
	}
	appendNote(&row, "256KiB bodies, write timeout %v, heartbeat 2s, memory alarm held %v (connection.blocked after %vms)", blockedWriteTimeout, blockedHold, blockedAfter.Milliseconds())
	appendNote(&row, "reconnects of the blocked connection during the alarm: %d (after: %d)", e.disconnected, len(e.reconnects))
	appendNote(&row, "confirms during the alarm: %d, pending then: %d (in flight, written but unread by the blocked broker: %d)", confirmedDuring, s1Blocked.Pending, atBlock.InFlight)
	appendNote(&row, "during the alarm: producer Close(1s ctx) %vms with %d unconfirmed dropped as shutdown; consumer Close %vms + Run %vms; client Close %vms, its stalled producer's Close %vms (%d dropped as shutdown)",
		p2Close.Milliseconds(), s2.DroppedBy[producer.Shutdown], kClose.Milliseconds(), kRun.Milliseconds(), c2Close.Milliseconds(), p3Close.Milliseconds(), s3.Dropped)
	appendNote(&row, "received = messages in the queue after the alarm (not consumed)")
	if p3Err == nil && s3.Dropped > 0 {
		// The producer reported them when its client closed, before its own
		// Close (which then had nothing left to drop).
		t.Logf("producer of the closed client: %d dropped (shutdown) when the client closed; its Close returned nil", s3.Dropped)
	}
	if errors.Is(runErr, context.DeadlineExceeded) {
		t.Errorf("consumer.Run: %v", runErr)
	}
	row.MaxPublishCallMs = ms(time.Duration(maxCall.Load()))
	row.DurationS = time.Since(t0).Seconds()
	checkConfirmLoss(t, &row)
	record(t, row)
}

// TestChaosBlockedBlackholeDetected: while the broker blocks the connection
// and the producer's write is stalled on it (which the write timeout must
// not take for a dead peer), the peer goes silent (a toxiproxy blackhole of
// everything the broker sends; what the client sends is already not read).
// Heartbeats (1s) must still detect the dead peer within a few seconds, the
// client must reconnect once the network is back, and after the alarm
// nothing accepted may be lost.
func TestChaosBlockedBlackholeDetected(t *testing.T) {
	notOn(t, testbroker.LavinMQ, "blocked_blackhole", alarmNotOnLavinMQ)
	const total, pre, bufSize = 200, 20, 100
	t0 := time.Now()
	maxCall.Store(0)
	url := testbroker.URL(t)
	px := testbroker.NewProxy(t)
	q := testbroker.Name(t, "blocked-blackhole")
	deleteQueueAtEnd(t, url, q)
	off := []string{"set_vm_memory_high_watermark", "0.4"}
	t.Cleanup(func() { testbroker.Ctl(t, off...) })

	ev := &connEvents{}
	pc := newClient(t, px.URL, lavinmq.WithWriteTimeout(blockedWriteTimeout), lavinmq.WithHeartbeat(time.Second),
		lavinmq.WithDialTimeout(2*time.Second), lavinmq.WithReconnectDelay(100*time.Millisecond, time.Second),
		lavinmq.WithHooks(ev), lavinmq.WithConnectionName("chaos-blocked-blackhole"))
	body := make([]byte, blockedBodySize)
	var d dropCount
	p := bigProducer(t, pc, q, bufSize, &d)
	pubCtx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if n := publishAll(pubCtx, p, body, pre); n != pre {
		t.Fatalf("first batch: %d of %d accepted", n, pre)
	}
	flush(t, p, 30*time.Second)

	testbroker.Ctl(t, "set_vm_memory_high_watermark", "0.000001")
	pub := make(chan struct{})
	go func() { defer close(pub); publishAll(pubCtx, p, body, total-pre) }()
	t.Cleanup(func() { cancel(); <-pub })
	testbroker.Eventually(t, 20*time.Second, "connection.blocked", func() bool { b, _ := pc.Blocked(); return b })
	time.Sleep(2 * blockedWriteTimeout) // the stalled write outlives the write timeout
	atBlock := p.Stats()
	if n := ev.snapshot().disconnected; n != 0 {
		t.Errorf("the blocked connection was dropped %d times before the blackhole (write timeout %v)", n, blockedWriteTimeout)
	}

	holeAt := time.Now()
	px.AddToxic("blackhole-down", "timeout", "downstream", map[string]any{"timeout": 0})
	testbroker.Eventually(t, 20*time.Second, "the dead peer detected", func() bool { return ev.snapshot().disconnected > 0 })
	e := ev.snapshot()
	detect := e.lost[0].Sub(holeAt)
	t.Logf("blackhole while blocked (%d in flight): detected after %v", atBlock.InFlight, detect)
	if detect > 6*time.Second {
		t.Errorf("a silent peer on a blocked connection was detected after %v (heartbeat 1s)", detect)
	}
	time.Sleep(time.Second)
	px.RemoveToxic("blackhole-down")
	testbroker.Eventually(t, 30*time.Second, "the reconnect", func() bool { return len(ev.snapshot().reconnects) > 0 })
	testbroker.Ctl(t, off...)
	unblockAt := time.Now()
	select {
	case <-pub:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the publisher loop did not finish after the alarm (stats %+v)", p.Stats())
	}
	flush(t, p, 2*time.Minute)
	recovery := time.Since(unblockAt)
	s := p.Stats()
	inQueue := testbroker.QueueLen(t, q)
	t.Logf("stats %+v, %d in the queue", s, inQueue)
	if int(s.Accepted) != total || s.Confirmed != s.Accepted || d.shutdown.Load()+d.other.Load() != 0 {
		t.Errorf("accepted %d of %d, stats %+v: not everything confirmed", s.Accepted, total, s)
	}
	if uint64(inQueue) < s.Confirmed {
		t.Errorf("%d confirmed but only %d in the queue", s.Confirmed, inQueue)
	}
	e = ev.snapshot()
	row := Row{Scenario: "blocked_blackhole", Mode: producer.Confirm.String(), Policy: buffer.Block.String(), Faults: 1,
		Published: s.Accepted, Confirmed: s.Confirmed, Dropped: s.Dropped, DroppedBy: map[string]uint64{}, Received: inQueue,
		Duplicates: max(0, inQueue-int(s.Confirmed)), RecoveryMs: durationsMs([]time.Duration{recovery})}
	row.Lost = int(s.Accepted - s.Confirmed - s.Dropped)
	if uint64(inQueue) < s.Confirmed {
		row.Lost += int(s.Confirmed) - inQueue
	}
	appendNote(&row, "memory alarm, 256KiB bodies, write timeout %v, heartbeat 1s; %d in flight on the stalled write", blockedWriteTimeout, atBlock.InFlight)
	appendNote(&row, "toxiproxy blackhole (downstream) while blocked: detected after %vms; disconnects %d, reconnects %d", detect.Milliseconds(), e.disconnected, len(e.reconnects))
	appendNote(&row, "received = messages in the queue after the alarm (not consumed; duplicates = re-sent after the reconnect); recovery from the alarm lifted to the last confirm")
	row.MaxPublishCallMs = ms(time.Duration(maxCall.Load()))
	row.DurationS = time.Since(t0).Seconds()
	checkConfirmLoss(t, &row)
	record(t, row)
}
