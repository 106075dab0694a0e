package lavinmq_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

// events records hook calls.
type events struct {
	mu           sync.Mutex
	connected    []lavinmq.ConnectedEvent
	disconnected []lavinmq.DisconnectedEvent
	attempts     []lavinmq.ReconnectAttemptEvent
	blocked      []bool
	discAt       time.Time
	connAt       time.Time
}

func (e *events) OnConnected(ev lavinmq.ConnectedEvent) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.connected = append(e.connected, ev)
	e.connAt = time.Now()
}

func (e *events) OnDisconnected(ev lavinmq.DisconnectedEvent) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.disconnected = append(e.disconnected, ev)
	e.discAt = time.Now()
}

func (e *events) OnReconnectAttempt(ev lavinmq.ReconnectAttemptEvent) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.attempts = append(e.attempts, ev)
}

func (e *events) OnBlocked(ev lavinmq.BlockedEvent) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.blocked = append(e.blocked, ev.Blocked)
}

// A changed hook signature must not compile silently.
var (
	_ lavinmq.HookConnected        = (*events)(nil)
	_ lavinmq.HookDisconnected     = (*events)(nil)
	_ lavinmq.HookReconnectAttempt = (*events)(nil)
	_ lavinmq.HookBlocked          = (*events)(nil)
)

func (e *events) counts() (conn, disc, att int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.connected), len(e.disconnected), len(e.attempts)
}

func (e *events) lastDisconnect() lavinmq.DisconnectedEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.disconnected[len(e.disconnected)-1]
}

func newClient(t *testing.T, url string, opts ...lavinmq.Option) (*lavinmq.Client, *events) {
	t.Helper()
	ev := &events{}
	c, err := lavinmq.New(url, append([]lavinmq.Option{lavinmq.WithHooks(ev)}, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, ev
}

func waitConnected(t *testing.T, c *lavinmq.Client, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatalf("WaitConnected: %v", err)
	}
}

func TestClientConnects(t *testing.T) {
	c, ev := newClient(t, testbroker.URL(t))
	waitConnected(t, c, 10*time.Second)
	if !c.Connected() {
		t.Fatal("Connected() = false after WaitConnected")
	}
	if n, _, _ := ev.counts(); n != 1 {
		t.Fatalf("OnConnected called %d times, want 1", n)
	}
}

// reconnectAfter causes a connection loss with cause (run on its own
// goroutine) and returns the time from the start of cause until the loss was
// detected, and from detection until the client was connected again.
func reconnectAfter(t *testing.T, c *lavinmq.Client, ev *events, cause func()) (detect, reconnect time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cn, err := c.Connection(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, disc0, _ := ev.counts()
	start := time.Now()
	done := make(chan struct{})
	go func() { defer close(done); cause() }()
	select {
	case <-cn.Done():
	case <-ctx.Done():
		t.Fatal("connection loss not detected within 60s")
	}
	next, err := c.Connection(ctx)
	if err != nil {
		t.Fatalf("no new connection: %v", err)
	}
	<-done
	if next.Generation() != cn.Generation()+1 {
		t.Fatalf("generation %d after %d, want +1", next.Generation(), cn.Generation())
	}
	if _, disc, _ := ev.counts(); disc != disc0+1 {
		t.Fatalf("OnDisconnected called %d times, want %d", disc, disc0+1)
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	return ev.discAt.Sub(start), ev.connAt.Sub(ev.discAt)
}

func TestClientReconnectsAfterForcedClose(t *testing.T) {
	c, ev := newClient(t, testbroker.URL(t))
	waitConnected(t, c, 10*time.Second)
	detect, reconnect := reconnectAfter(t, c, ev, func() { testbroker.CloseAllConnections(t) })
	if by := ev.lastDisconnect().DetectedBy; by != lavinmq.DetectedByNotify {
		t.Fatalf("detected by %q, want %q", by, lavinmq.DetectedByNotify)
	}
	t.Logf("close notification path (rabbitmqctl close_all_connections): detected %v after starting rabbitmqctl (its own start-up included), reconnected %v after detection",
		detect, reconnect)
}

func TestClientPollDetectsMissedCloseNotification(t *testing.T) {
	c, ev := newClient(t, testbroker.URL(t), lavinmq.IgnoreCloseNotifyForTest())
	waitConnected(t, c, 10*time.Second)
	detect, reconnect := reconnectAfter(t, c, ev, func() { testbroker.CloseAllConnections(t) })
	if by := ev.lastDisconnect().DetectedBy; by != lavinmq.DetectedByPoll {
		t.Fatalf("detected by %q, want %q", by, lavinmq.DetectedByPoll)
	}
	t.Logf("poll path (close notification ignored): detected %v after starting rabbitmqctl, reconnected %v after detection", detect, reconnect)
}

func TestClientBrokerDownAtNewThenUp(t *testing.T) {
	p := testbroker.NewProxy(t)
	p.Disable()
	start := time.Now()
	c, ev := newClient(t, p.URL)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("New took %v with the broker down; it must return at once", d)
	}
	// WaitConnected honours ctx while the broker is down.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	err := c.WaitConnected(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitConnected with broker down = %v, want DeadlineExceeded", err)
	}
	if c.Connected() {
		t.Fatal("Connected() = true with the broker down")
	}
	p.Enable()
	waitConnected(t, c, 10*time.Second)
	if _, _, att := ev.counts(); att == 0 {
		t.Fatal("no failed attempt reported while the broker was down")
	}
}

func TestClientFailoverToSecondURL(t *testing.T) {
	dead := testbroker.NewProxy(t)
	dead.Disable()
	c, ev := newClient(t, dead.URL, lavinmq.WithFailover(testbroker.URL(t)))
	waitConnected(t, c, 10*time.Second)
	ev.mu.Lock()
	got := ev.connected[0].Endpoint
	ev.mu.Unlock()
	if want := testbroker.HostPort(t); got != want {
		t.Fatalf("connected to %s, want the second URL %s", got, want)
	}
}

func TestClientCloseDuringReconnectLoopIsPrompt(t *testing.T) {
	p := testbroker.NewProxy(t)
	p.Disable()
	c, err := lavinmq.New(p.URL, lavinmq.WithReconnectDelay(50*time.Millisecond, 200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // several attempts
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close during reconnect loop took %v", d)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := c.WaitConnected(context.Background()); !errors.Is(err, lavinmq.ErrClosed) {
		t.Fatalf("WaitConnected after Close = %v, want ErrClosed", err)
	}
}

// TestReconnectsAreSpreadByJitter: ten clients lose their connections at the
// same instant (the broker closes them all); the random pause before the first
// dial spreads their reconnects instead of a thundering herd.
func TestReconnectsAreSpreadByJitter(t *testing.T) {
	const n = 10
	evs := make([]*events, n)
	for i := range evs {
		var c *lavinmq.Client
		c, evs[i] = newClient(t, testbroker.URL(t))
		waitConnected(t, c, 10*time.Second)
	}
	testbroker.CloseAllConnections(t)
	downtimes := make([]time.Duration, 0, n)
	testbroker.Eventually(t, 20*time.Second, "every client reconnected", func() bool {
		downtimes = downtimes[:0]
		for _, ev := range evs {
			ev.mu.Lock()
			if last := ev.connected[len(ev.connected)-1]; last.Reconnect {
				downtimes = append(downtimes, last.Downtime)
			}
			ev.mu.Unlock()
		}
		return len(downtimes) == n
	})
	slices.Sort(downtimes)
	spread := downtimes[n-1] - downtimes[0]
	t.Logf("downtime after close_all_connections over %d clients: min %v, median %v, max %v (spread %v)",
		n, downtimes[0], downtimes[n/2], downtimes[n-1], spread)
	if spread < 10*time.Millisecond {
		t.Fatalf("reconnects within %v of each other: not spread (downtimes %v)", spread, downtimes)
	}
}
