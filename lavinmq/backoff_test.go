package lavinmq_test

import (
	"sync"
	"testing"
	"time"

	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

// recordAfter replaces time.After: it records each delay and fires at once,
// for the first n waits; later waits never fire, parking the loop.
type recordAfter struct {
	mu     sync.Mutex
	delays []time.Duration
	n      int
	full   chan struct{}
}

func (r *recordAfter) after(d time.Duration) <-chan time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.delays) >= r.n {
		return nil
	}
	r.delays = append(r.delays, d)
	if len(r.delays) == r.n {
		close(r.full)
	}
	ch := make(chan time.Time, 1)
	ch <- time.Now()
	return ch
}

// delays runs a client against a refused port and returns its first n backoff delays, without sleeping.
func delays(t *testing.T, n int, opts ...lavinmq.Option) []time.Duration {
	t.Helper()
	r := &recordAfter{n: n, full: make(chan struct{})}
	opts = append(opts, lavinmq.WithAfterForTest(r.after))
	c, err := lavinmq.New("amqp://guest:guest@127.0.0.1:1/", opts...)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.full:
	case <-time.After(20 * time.Second):
		t.Fatal("reconnect loop did not reach the expected number of waits")
	}
	c.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.delays
}

func TestBackoffSequenceWithoutJitter(t *testing.T) {
	got := delays(t, 12, lavinmq.WithReconnectJitter(0))
	want := []time.Duration{100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, 30000}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("delay %d = %v, want %v (all: %v)", i, got[i], want[i]*time.Millisecond, got)
		}
	}
}

func TestBackoffJitterStaysInBounds(t *testing.T) {
	got := delays(t, 40, lavinmq.WithReconnectDelay(100*time.Millisecond, 5*time.Second), lavinmq.WithReconnectMultiplier(1.5))
	base := 100 * time.Millisecond
	distinct := map[time.Duration]bool{}
	for i, d := range got {
		lo, hi := time.Duration(float64(base)*0.5), time.Duration(float64(base)*1.5)
		if d < lo || d > hi {
			t.Fatalf("delay %d = %v outside [%v, %v]", i, d, lo, hi)
		}
		distinct[d] = true
		base = min(time.Duration(float64(base)*1.5), 5*time.Second)
	}
	if len(distinct) < len(got)/2 {
		t.Fatalf("jitter produced only %d distinct delays out of %d", len(distinct), len(got))
	}
}

func TestBackoffWaitsOnlyAfterAFullRoundOfURLs(t *testing.T) {
	got := delays(t, 3, lavinmq.WithFailover("amqp://guest:guest@127.0.0.1:2/", "amqp://guest:guest@127.0.0.1:3/"),
		lavinmq.WithReconnectJitter(0))
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delays %v, want %v: one wait per round of three URLs", got, want)
		}
	}
}

// TestBackoffJitterNeverExceedsMaxDelay: jitter is capped, so the max delay
// is a true bound; at the cap the delays still spread over [max·(1−j), max].
func TestBackoffJitterNeverExceedsMaxDelay(t *testing.T) {
	const max = 400 * time.Millisecond
	got := delays(t, 40, lavinmq.WithReconnectDelay(100*time.Millisecond, max))
	distinct := map[time.Duration]bool{}
	for i, d := range got {
		if d > max {
			t.Fatalf("delay %d = %v exceeds the max delay %v (all: %v)", i, d, max, got)
		}
		if i >= 3 { // the uncapped delay is at the cap from the fourth on
			if d < max/2 {
				t.Fatalf("delay %d = %v below max·(1−j) = %v", i, d, max/2)
			}
			distinct[d] = true
		}
	}
	if len(distinct) < 30 {
		t.Fatalf("only %d distinct delays at the cap: jitter collapsed onto the max", len(distinct))
	}
}
