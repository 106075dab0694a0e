package lavinmq

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Unit tests of the cork (cork.go) on a fake socket that records every real
// write, and on net.Pipe under deadlineConn for the deadline rules.

// recConn is a net.Conn that records the writes that reach it.
type recConn struct {
	net.Conn // nil: only Write, Close and the deadline setters are used

	mu        sync.Mutex
	writes    [][]byte
	deadlines []time.Time // SetWriteDeadline calls, in order
	fail      error       // every Write fails with it once set
	closed    bool
}

func (r *recConn) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return 0, r.fail
	}
	r.writes = append(r.writes, bytes.Clone(p))
	return len(p), nil
}

func (r *recConn) SetWriteDeadline(t time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deadlines = append(r.deadlines, t)
	return nil
}

func (r *recConn) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	return nil
}

// got returns the number of real writes and all bytes written, in order.
func (r *recConn) got() (int, []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.writes), bytes.Join(r.writes, nil)
}

func (r *recConn) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

func newCorked(t *testing.T) (*Conn, *recConn) {
	t.Helper()
	rec := &recConn{}
	return &Conn{cork: &corkConn{Conn: rec, raw: rec}}, rec
}

func frame(i int) []byte { return fmt.Appendf(nil, "[frame %04d]", i) }

func TestCorkWritesABurstInOneWrite(t *testing.T) {
	cn, rec := newCorked(t)
	var want []byte
	uncork := cn.Cork()
	for i := range 256 {
		if n, err := cn.cork.Write(frame(i)); err != nil || n != len(frame(i)) {
			t.Fatalf("corked write %d: n=%d err=%v", i, n, err)
		}
		want = append(want, frame(i)...)
	}
	if n, _ := rec.got(); n != 0 {
		t.Fatalf("%d real writes while corked, want 0", n)
	}
	if err := uncork(); err != nil {
		t.Fatal(err)
	}
	n, b := rec.got()
	t.Logf("256 writes corked -> %d real write(s), %d bytes", n, len(b))
	if n != 1 || !bytes.Equal(b, want) {
		t.Fatalf("after uncork: %d real writes, bytes equal: %v; want 1 write of all bytes in order", n, bytes.Equal(b, want))
	}
	// Uncorked, every write goes through at once.
	if _, err := cn.cork.Write(frame(999)); err != nil {
		t.Fatal(err)
	}
	if n, _ := rec.got(); n != 2 {
		t.Fatalf("uncorked write: %d real writes in all, want 2", n)
	}
	// A second call of the same uncork ends nothing more.
	other := cn.Cork()
	if err := uncork(); err != nil {
		t.Fatal(err)
	}
	_, _ = cn.cork.Write(frame(1000))
	if n, _ := rec.got(); n != 2 {
		t.Fatalf("a repeated uncork ended another goroutine's cork: %d real writes, want 2", n)
	}
	_ = other()
	if n, _ := rec.got(); n != 3 {
		t.Fatalf("after the other cork's end: %d real writes, want 3", n)
	}
}

func TestCorkByteCapForcesARealWrite(t *testing.T) {
	cn, rec := newCorked(t)
	chunk := bytes.Repeat([]byte{'x'}, 1000)
	uncork := cn.Cork()
	defer uncork()
	var total int
	for total+len(chunk) <= CorkMaxBytes {
		_, _ = cn.cork.Write(chunk)
		total += len(chunk)
	}
	if n, _ := rec.got(); n != 0 {
		t.Fatalf("%d real writes below the cap (%d of %d bytes buffered), want 0", n, total, CorkMaxBytes)
	}
	_, _ = cn.cork.Write(chunk) // past the cap
	n, b := rec.got()
	if n != 1 || len(b) != total {
		t.Fatalf("write past the cap: %d real writes of %d bytes, want 1 of the %d buffered", n, len(b), total)
	}
	if l := len(cn.cork.buf); l != len(chunk) || cap(cn.cork.buf) != CorkMaxBytes {
		t.Fatalf("buffer after the forced write: len %d cap %d, want %d and %d", l, cap(cn.cork.buf), len(chunk), CorkMaxBytes)
	}
	// A write larger than the cap is not copied: it goes out after the buffer.
	big := bytes.Repeat([]byte{'y'}, CorkMaxBytes+1)
	_, _ = cn.cork.Write(big)
	n, b = rec.got()
	if n != 3 || !bytes.HasSuffix(b, big) || len(b) != total+len(chunk)+len(big) {
		t.Fatalf("write larger than the cap: %d real writes, %d bytes; want 3 (buffer, then it), %d bytes", n, len(b), total+len(chunk)+len(big))
	}
}

func TestCorkHoldsOtherWritersOnlyUntilTheBurstEnds(t *testing.T) {
	cn, rec := newCorked(t)
	uncorkA := cn.Cork()
	_, _ = cn.cork.Write([]byte("A1"))
	// Another goroutine (an ack, a heartbeat) writes while A is corked: it
	// does not wait, and its bytes go out with A's burst, not later.
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = cn.cork.Write([]byte("hb"))
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a write by another goroutine waited for the cork")
	}
	// B corks too; A's end writes everything buffered, B's included.
	uncorkB := cn.Cork()
	_, _ = cn.cork.Write([]byte("B1"))
	if n, _ := rec.got(); n != 0 {
		t.Fatalf("%d real writes while corked, want 0", n)
	}
	if err := uncorkA(); err != nil {
		t.Fatal(err)
	}
	if n, b := rec.got(); n != 1 || string(b) != "A1hbB1" {
		t.Fatalf("A's uncork wrote %d times %q, want once \"A1hbB1\" (nothing held for B)", n, b)
	}
	_, _ = cn.cork.Write([]byte("B2"))
	if err := uncorkB(); err != nil {
		t.Fatal(err)
	}
	if n, b := rec.got(); n != 2 || string(b) != "A1hbB1B2" {
		t.Fatalf("after B's uncork: %d writes %q", n, b)
	}
}

func TestCorkFailedWriteFailsTheBurstAndClosesTheSocket(t *testing.T) {
	cn, rec := newCorked(t)
	uncork := cn.Cork()
	_, _ = cn.cork.Write([]byte("lost"))
	boom := errors.New("connection reset by peer")
	rec.mu.Lock()
	rec.fail = boom
	rec.mu.Unlock()
	if err := uncork(); !errors.Is(err, boom) {
		t.Fatalf("uncork: %v, want the write's error", err)
	}
	if !rec.isClosed() {
		t.Fatal("the socket stays open after a failed write (amqp091-go would not learn of it)")
	}
	if _, err := cn.cork.Write([]byte("later")); !errors.Is(err, boom) {
		t.Fatalf("a write after the failure: %v, want the same error", err)
	}
	if err := cn.Cork()(); !errors.Is(err, boom) {
		t.Fatalf("a later burst's uncork: %v, want the error", err)
	}
}

func TestCorkRealWriteHasTheWriteDeadline(t *testing.T) {
	rec := &recConn{}
	d := &deadlineConn{Conn: rec, timeout: 7 * time.Second, poll: time.Second}
	cn := &Conn{cork: &corkConn{Conn: d, raw: rec}}
	uncork := cn.Cork()
	for i := range 10 {
		_, _ = cn.cork.Write(frame(i))
	}
	rec.mu.Lock()
	before := len(rec.deadlines)
	rec.mu.Unlock()
	t0 := time.Now()
	if err := uncork(); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if before != 0 || len(rec.deadlines) != 1 || len(rec.writes) != 1 {
		t.Fatalf("deadlines set before/after uncork %d/%d, writes %d; want 0/1 and 1", before, len(rec.deadlines), len(rec.writes))
	}
	if ahead := rec.deadlines[0].Sub(t0); ahead < 6*time.Second || ahead > 8*time.Second {
		t.Fatalf("real write's deadline %v ahead, want the 7s write timeout", ahead)
	}
}

func TestCorkStalledPeerFailsTheUncorkWithinTheWriteTimeout(t *testing.T) {
	a, b := net.Pipe() // b never reads: a dead peer with full buffers
	defer b.Close()
	d := &deadlineConn{Conn: a, timeout: 100 * time.Millisecond, poll: 20 * time.Millisecond}
	cn := &Conn{cork: &corkConn{Conn: d, raw: a}}
	uncork := cn.Cork()
	_, _ = cn.cork.Write(make([]byte, 512))
	res := make(chan error, 1)
	go func() { res <- uncork() }()
	select {
	case err := <-res:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("uncork to a stalled peer: %v, want a deadline error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("uncork to a stalled peer did not fail within its 100ms write timeout")
	}
	// The socket was closed: the peer sees EOF.
	_ = b.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := b.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("peer read after the failed write: %v, want EOF", err)
	}
}

func TestCorkCloseEndsAStalledWrite(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	d := &deadlineConn{Conn: a, timeout: time.Hour, poll: time.Hour}
	cn := &Conn{cork: &corkConn{Conn: d, raw: a}}
	uncork := cn.Cork()
	_, _ = cn.cork.Write(make([]byte, 512))
	res := make(chan error, 1)
	go func() { res <- uncork() }()
	time.Sleep(50 * time.Millisecond) // let it stall
	closed := make(chan struct{})
	go func() { _ = cn.cork.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for the stalled write")
	}
	if err := <-res; err == nil {
		t.Fatal("the stalled uncork returned nil after Close")
	}
	if _, err := cn.cork.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after Close: %v, want net.ErrClosed", err)
	}
}

// Writers that each write whole chunks, with corks coming and going on other
// goroutines: every byte arrives once, every Write's bytes together, and
// each writer's chunks in its order.
func TestCorkConcurrentWritersKeepOrderAndLoseNothing(t *testing.T) {
	cn, rec := newCorked(t)
	const writers, per = 4, 2000
	var wg sync.WaitGroup
	var stop atomic.Bool
	for range 2 { // corkers: one burst after another
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				u := cn.Cork()
				time.Sleep(10 * time.Microsecond)
				if err := u(); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	var ww sync.WaitGroup
	for w := range writers {
		ww.Add(1)
		go func() {
			defer ww.Done()
			for i := range per {
				if _, err := cn.cork.Write(fmt.Appendf(nil, "<%d:%05d>", w, i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	ww.Wait()
	stop.Store(true)
	wg.Wait()
	_ = cn.Cork()() // nothing left behind: the last uncork flushed
	n, b := rec.got()
	if l := len(cn.cork.buf); l != 0 {
		t.Fatalf("%d bytes left in the buffer with no cork held", l)
	}
	next := make([]int, writers)
	for len(b) > 0 {
		var w, i int
		if _, err := fmt.Sscanf(string(b[:9]), "<%d:%05d>", &w, &i); err != nil {
			t.Fatalf("torn chunk at %q: %v", b[:min(len(b), 20)], err)
		}
		if i != next[w] {
			t.Fatalf("writer %d: chunk %d after %d", w, i, next[w]-1)
		}
		next[w]++
		b = b[9:]
	}
	for w, k := range next {
		if k != per {
			t.Fatalf("writer %d: %d chunks arrived, want %d", w, k, per)
		}
	}
	t.Logf("%d writes of %d writers arrived in %d real writes", writers*per, writers, n)
}
