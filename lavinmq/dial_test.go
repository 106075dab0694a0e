package lavinmq

import (
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// Unit tests of the socket deadline rules, on net.Pipe: a peer that does not
// read is a broker that blocked the connection (or a dead one).

func pipeConn(t *testing.T, timeout time.Duration, blocked *atomic.Bool) (*deadlineConn, net.Conn) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	d := &deadlineConn{Conn: a, timeout: timeout, poll: 20 * time.Millisecond}
	if blocked != nil {
		d.blocked = blocked.Load
	}
	return d, b
}

type writeResult struct {
	n   int
	err error
	at  time.Time
}

func writeAsync(d *deadlineConn, p []byte) <-chan writeResult {
	ch := make(chan writeResult, 1)
	go func() {
		n, err := d.Write(p)
		ch <- writeResult{n, err, time.Now()}
	}()
	return ch
}

func TestDeadlineConnWriteFailsWhenPeerDoesNotReadAndNotBlocked(t *testing.T) {
	d, _ := pipeConn(t, 100*time.Millisecond, new(atomic.Bool))
	t0 := time.Now()
	r := <-writeAsync(d, make([]byte, 1024))
	if !errors.Is(r.err, os.ErrDeadlineExceeded) {
		t.Fatalf("write to a peer that does not read: err %v, want a deadline error", r.err)
	}
	if took := r.at.Sub(t0); took < 80*time.Millisecond {
		t.Fatalf("write failed after %v, before its 100ms timeout", took)
	}
}

func TestDeadlineConnStalledWriteWaitsWhileBlocked(t *testing.T) {
	var blocked atomic.Bool
	blocked.Store(true)
	d, peer := pipeConn(t, 100*time.Millisecond, &blocked)
	p := make([]byte, 64<<10)
	res := writeAsync(d, p)
	select {
	case r := <-res:
		t.Fatalf("write stalled on a blocked connection returned after less than 8 write timeouts: n=%d err=%v", r.n, r.err)
	case <-time.After(800 * time.Millisecond):
	}
	// The broker unblocks and reads again.
	blocked.Store(false)
	got := make(chan int, 1)
	go func() { n, _ := io.ReadFull(peer, make([]byte, len(p))); got <- n }()
	select {
	case r := <-res:
		if r.err != nil || r.n != len(p) {
			t.Fatalf("after the block: n=%d err=%v, want %d, nil", r.n, r.err, len(p))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("write did not complete once the peer read again")
	}
	if n := <-got; n != len(p) {
		t.Fatalf("peer read %d bytes, want %d", n, len(p))
	}
}

func TestDeadlineConnStallAfterUnblockGetsFullTimeout(t *testing.T) {
	var blocked atomic.Bool
	blocked.Store(true)
	const timeout = 300 * time.Millisecond
	d, _ := pipeConn(t, timeout, &blocked)
	res := writeAsync(d, make([]byte, 1024))
	time.Sleep(500 * time.Millisecond)
	unblocked := time.Now()
	blocked.Store(false)
	select {
	case r := <-res:
		if !errors.Is(r.err, os.ErrDeadlineExceeded) {
			t.Fatalf("err %v, want a deadline error once unblocked", r.err)
		}
		if after := r.at.Sub(unblocked); after < timeout*8/10 {
			t.Fatalf("write failed %v after the unblock, before a full %v timeout", after, timeout)
		}
		t.Logf("stalled write failed %v after the unblock (timeout %v)", r.at.Sub(unblocked), timeout)
	case <-time.After(10 * time.Second):
		t.Fatal("write stalled after the unblock never failed")
	}
}

func TestDeadlineConnHardDeadlineEndsStalledWriteAndRead(t *testing.T) {
	var blocked atomic.Bool
	blocked.Store(true)
	d, _ := pipeConn(t, time.Hour, &blocked)
	res := writeAsync(d, make([]byte, 1024))
	readErr := make(chan error, 1)
	go func() { _, err := d.Read(make([]byte, 16)); readErr <- err }()
	time.Sleep(100 * time.Millisecond)
	t0 := time.Now()
	if err := d.SetDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	for _, what := range []string{"write", "read"} {
		var err error
		select {
		case r := <-res:
			err = r.err
			res = nil
		case err = <-readErr:
			readErr = nil
		case <-time.After(5 * time.Second):
			t.Fatalf("a %s was still stalled 5s after a hard deadline of 200ms", what)
		}
		if err == nil {
			t.Fatalf("stalled I/O returned nil after the hard deadline")
		}
	}
	t.Logf("hard deadline of 200ms ended the stalled write and read after %v", time.Since(t0))
	if _, err := d.Write([]byte{1}); err == nil {
		t.Fatalf("write after the hard deadline succeeded")
	}
}

func TestDeadlineConnReadGoesOnWhileDataArrives(t *testing.T) {
	d, peer := pipeConn(t, time.Second, nil)
	const span = 200 * time.Millisecond
	// The heartbeater sets the read deadline once and then cannot renew it.
	if err := d.SetReadDeadline(time.Now().Add(span)); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	sent := make(chan time.Time, 1)
	go func() {
		var last time.Time
		defer func() { sent <- last }()
		for range 15 { // a byte every 50ms for 750ms: well past the span
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := peer.Write([]byte{1}); err != nil {
				return
			}
			last = time.Now()
		}
	}()
	defer close(stop)
	buf := make([]byte, 1)
	for i := range 15 {
		if _, err := d.Read(buf); err != nil {
			t.Fatalf("read %d failed while data arrived every 50ms (span %v): %v", i, span, err)
		}
	}
	last := <-sent
	_, err := d.Read(buf)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after the peer went silent: %v, want a deadline error", err)
	}
	if silent := time.Since(last); silent < span*8/10 {
		t.Fatalf("silent peer detected after %v, before the span %v", silent, span)
	}
}

// TestDeadlineConnKeepsTheReadDeadlineAfterTheHandshake: amqp091-go clears
// every deadline (SetDeadline(zero)) once the handshake is done and arms the
// read deadline again only at the next frame read. A peer silent from then on
// (LavinMQ sends its first heartbeat half an interval after open-ok, so a
// blackhole right after connecting hit this) must still be detected within
// the span set while reading the handshake.
func TestDeadlineConnKeepsTheReadDeadlineAfterTheHandshake(t *testing.T) {
	d, peer := pipeConn(t, time.Second, nil)
	const span = 300 * time.Millisecond
	go func() { _, _ = peer.Write([]byte{1}) }() // the handshake's last frame
	buf := make([]byte, 1)
	if _, err := d.Read(buf); err != nil {
		t.Fatal(err)
	}
	if err := d.SetReadDeadline(time.Now().Add(span)); err != nil {
		t.Fatal(err)
	}
	if err := d.SetDeadline(time.Time{}); err != nil { // amqp091-go: handshake done
		t.Fatal(err)
	}
	t0 := time.Now()
	res := make(chan error, 1)
	go func() { _, err := d.Read(buf); res <- err }()
	select {
	case err := <-res:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read from a silent peer: %v, want a deadline error", err)
		}
		t.Logf("silent peer after the handshake detected after %v (span %v)", time.Since(t0), span)
	case <-time.After(5 * time.Second):
		t.Fatalf("a peer silent since the handshake was not detected within 5s (span %v)", span)
	}
}
