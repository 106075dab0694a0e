package lavinmq_test

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

// dropProxy forwards connections to the broker and, like a load balancer
// that accepts and then drops, closes each one hold after the broker's
// connection.open-ok (the AMQP handshake is complete). A negative hold keeps
// connections open. It records when it accepted each connection.
type dropProxy struct {
	ln     net.Listener
	target string
	hold   atomic.Int64 // time.Duration
	held   atomic.Int64 // connections past open-ok that are kept open
	wg     sync.WaitGroup

	mu      sync.Mutex
	accepts []time.Time
	conns   map[net.Conn]struct{}
	closed  bool

	URL string
}

func newDropProxy(t *testing.T, hold time.Duration) *dropProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dropProxy{ln: ln, target: testbroker.HostPort(t), conns: map[net.Conn]struct{}{}}
	p.hold.Store(int64(hold))
	p.URL = testbroker.WithHost(t, ln.Addr().String())
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *dropProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.accepts = append(p.accepts, time.Now())
		p.mu.Unlock()
		b, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		if !p.track(c, b) {
			return
		}
		p.wg.Add(2)
		go func() { defer p.wg.Done(); _, _ = io.Copy(b, c); p.drop(c, b) }()
		go func() { defer p.wg.Done(); p.downstream(c, b); p.drop(c, b) }()
	}
}

func (p *dropProxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		for _, c := range conns {
			c.Close()
		}
		return false
	}
	for _, c := range conns {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *dropProxy) drop(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		c.Close()
		delete(p.conns, c)
	}
}

// downstream copies broker frames to the client and arms the drop timer at
// connection.open-ok (a method frame of class 10, method 41).
func (p *dropProxy) downstream(client, broker net.Conn) {
	var hdr [7]byte
	armed := false
	for {
		if _, err := io.ReadFull(broker, hdr[:]); err != nil {
			return
		}
		body := make([]byte, binary.BigEndian.Uint32(hdr[3:7])+1) // payload and frame-end
		if _, err := io.ReadFull(broker, body); err != nil {
			return
		}
		if _, err := client.Write(append(hdr[:], body...)); err != nil {
			return
		}
		if !armed && hdr[0] == 1 && len(body) >= 5 && binary.BigEndian.Uint16(body[0:2]) == 10 && binary.BigEndian.Uint16(body[2:4]) == 41 {
			armed = true
			if hold := time.Duration(p.hold.Load()); hold >= 0 {
				// drop runs on a timer goroutine; closing the sockets ends both copy goroutines.
				time.AfterFunc(hold, func() { p.drop(client, broker) })
			} else {
				p.held.Add(1)
			}
		}
	}
}

// setHold changes the hold for connections handshaken from now on.
func (p *dropProxy) setHold(d time.Duration) { p.hold.Store(int64(d)) }

// closeAll closes every connection through the proxy now.
func (p *dropProxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

func (p *dropProxy) acceptTimes() []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.accepts...)
}

func (p *dropProxy) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.ln.Close()
	p.closeAll()
	p.wg.Wait()
}

func intervals(ts []time.Time) []time.Duration {
	var out []time.Duration
	for i := 1; i < len(ts); i++ {
		out = append(out, ts[i].Sub(ts[i-1]).Round(time.Millisecond))
	}
	return out
}

func mean(ds []time.Duration) time.Duration {
	var s time.Duration
	for _, d := range ds {
		s += d
	}
	return s / time.Duration(len(ds))
}

// TestNoHotReconnectLoopWhenBrokerDropsAfterHandshake: a peer that accepts
// each connection, completes the AMQP handshake and drops it 50 ms later must
// see the client's dials slow down exponentially (the backoff resets only
// after a stable connection), not a dial every 50-100 ms.
func TestNoHotReconnectLoopWhenBrokerDropsAfterHandshake(t *testing.T) {
	p := newDropProxy(t, 50*time.Millisecond)
	c, ev := newClient(t, p.URL, lavinmq.WithReconnectDelay(20*time.Millisecond, 5*time.Second))
	const dials = 8
	testbroker.Eventually(t, 30*time.Second, "8 dials through the dropping proxy", func() bool { return len(p.acceptTimes()) >= dials })
	got := intervals(p.acceptTimes()[:dials])
	conn, disc, _ := ev.counts()
	t.Logf("intervals between dials (connection dropped 50ms after open-ok, initial delay 20ms): %v; %d connects, %d losses", got, conn, disc)
	if conn < dials-1 {
		t.Fatalf("only %d connections completed; the proxy must let the handshake through", conn)
	}
	first, last := mean(got[:2]), mean(got[len(got)-2:])
	t.Logf("mean of the first two intervals %v, of the last two %v: ratio %.1f", first, last, float64(last)/float64(first))
	if last < 4*first {
		t.Fatalf("dial intervals did not grow: first %v, last %v (all %v): a hot reconnect loop", first, last, got)
	}
	_ = c
}

// TestBackoffResetsAfterStableConnection: once a connection has stayed up
// longer than max(1s, 10 x initial delay), a loss is followed by a prompt
// redial, not by the long delay that the earlier short-lived connections had
// grown the backoff to.
func TestBackoffResetsAfterStableConnection(t *testing.T) {
	const initial = 20 * time.Millisecond
	p := newDropProxy(t, 50*time.Millisecond)
	c, _ := newClient(t, p.URL, lavinmq.WithReconnectDelay(initial, 10*time.Second))
	const short = 7 // connections before the proxy holds them: at least 6 are dropped
	testbroker.Eventually(t, 30*time.Second, "7 short-lived connections", func() bool { return len(p.acceptTimes()) >= short })
	p.setHold(-1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	testbroker.Eventually(t, 30*time.Second, "a connection that stays", func() bool { return p.held.Load() > 0 && c.Connected() })
	dropped := len(p.acceptTimes()) - 1 // every connection but the held one
	growing := intervals(p.acceptTimes())
	time.Sleep(1500 * time.Millisecond) // > max(1s, 10 x 20ms): stable
	if !c.Connected() {
		t.Fatal("connection through the holding proxy lost")
	}
	n := len(p.acceptTimes())
	cut := time.Now()
	p.closeAll()
	testbroker.Eventually(t, 30*time.Second, "a redial after the stable connection was cut", func() bool { return len(p.acceptTimes()) > n })
	gap := p.acceptTimes()[n].Sub(cut)
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	// Each dropped connection was followed by one delay: initial·2^0 .. 2^(dropped-1).
	// Without a reset the next would be initial·2^dropped ± 50%.
	floor := time.Duration(float64(initial) * float64(int(1)<<dropped) * 0.5)
	t.Logf("intervals while %d connections were short-lived: %v; redial %v after a stable connection was cut (without a reset it would wait >= %v)",
		dropped, growing, gap.Round(time.Millisecond), floor)
	if gap > floor/2 {
		t.Fatalf("redial %v after a stable connection: the backoff was not reset", gap)
	}
}
