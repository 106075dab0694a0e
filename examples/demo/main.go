// Command demo publishes steadily in Confirm mode and consumes, restarts the
// local broker midway (through scripts/broker.sh), prints one line a second
// and a final verdict. It exits non-zero if any accepted message is neither
// received by the consumer nor reported dropped.
//
//	make demo      (starts the broker, then: LAVINMQ_URL=... go run ./examples/demo)
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

func main() {
	url := flag.String("url", envOr("LAVINMQ_URL", "amqp://guest:guest@127.0.0.1:5680/"), "broker URL")
	duration := flag.Duration("duration", 25*time.Second, "how long to publish")
	rate := flag.Int("rate", 1000, "messages per second")
	restartAt := flag.Duration("restart-at", 8*time.Second, "when to restart the broker (0: never)")
	restartCmd := flag.String("restart-cmd", "scripts/broker.sh restart", "command that restarts the broker")
	flag.Parse()
	os.Exit(run(*url, *duration, *rate, *restartAt, *restartCmd))
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// tally tracks every message by its sequence number.
type tally struct {
	mu       sync.Mutex
	received map[uint64]int // seq -> times delivered
	dropped  map[uint64]producer.DropReason
}

func run(url string, duration time.Duration, rate int, restartAt time.Duration, restartCmd string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// A 2 s cap on the reconnect backoff (default 30 s) so the demo shows a quick recovery.
	c, err := lavinmq.New(url, lavinmq.WithLogger(log), lavinmq.WithConnectionName("lavinmq-go demo"),
		lavinmq.WithReconnectDelay(100*time.Millisecond, 2*time.Second))
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 2
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.WaitConnected(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "demo: broker not reachable:", err)
		return 2
	}
	queue := fmt.Sprintf("lavinmq-go-demo-%d", time.Now().UnixNano())
	// Durable queue + persistent (Confirm mode default) messages: confirmed
	// messages survive the broker restart.
	if _, err := c.DeclareQueue(ctx, lavinmq.Queue{Name: queue, Durable: true}); err != nil {
		fmt.Fprintln(os.Stderr, "demo: declare:", err)
		return 2
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = c.DeleteQueue(ctx, queue)
	}()

	t := &tally{received: map[uint64]int{}, dropped: map[uint64]producer.DropReason{}}
	p, err := producer.New(c, queue,
		producer.WithMode(producer.Confirm),
		producer.WithBufferSize(50_000),
		producer.OnDrop(func(m producer.Message, _ string, reason producer.DropReason) {
			t.mu.Lock()
			t.dropped[binary.BigEndian.Uint64(m.Body)] = reason
			t.mu.Unlock()
		}))
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 2
	}
	k, err := consumer.New(c, queue, consumer.WithPrefetch(200))
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 2
	}
	runCtx, stopConsumer := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var dups atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = k.Run(runCtx, func(_ context.Context, d consumer.Delivery) consumer.Action {
			seq := binary.BigEndian.Uint64(d.Body)
			t.mu.Lock()
			t.received[seq]++
			if t.received[seq] > 1 {
				dups.Add(1)
			}
			t.mu.Unlock()
			return consumer.Ack
		})
	}()

	fmt.Printf("demo: queue %s, %d msg/s for %v, broker restart at %v\n", queue, rate, duration, restartAt)
	start := time.Now()
	var published atomic.Uint64
	pubDone := make(chan struct{})
	go func() { // the publisher: steady rate, never waits on the network
		defer close(pubDone)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		var seq uint64
		for time.Since(start) < duration {
			<-tick.C
			want := uint64(time.Since(start).Seconds() * float64(rate))
			for ; seq < want; seq++ {
				body := make([]byte, 8)
				binary.BigEndian.PutUint64(body, seq)
				if err := p.Publish(context.Background(), producer.Message{Body: body}); err != nil {
					fmt.Fprintln(os.Stderr, "demo: publish:", err)
					continue
				}
				published.Store(seq + 1)
			}
		}
	}()

	restartErr := make(chan error, 1)
	if restartAt > 0 {
		time.AfterFunc(restartAt, func() {
			fmt.Printf("demo: restarting the broker (%s)\n", restartCmd)
			cmd := exec.Command("bash", "-c", restartCmd)
			cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
			restartErr <- cmd.Run()
		})
	}

	line := func() {
		s := p.Stats()
		t.mu.Lock()
		recv := len(t.received)
		t.mu.Unlock()
		state := "connected"
		if !c.Connected() {
			state = "DISCONNECTED"
		}
		fmt.Printf("%5.1fs published=%d confirmed=%d dropped=%d resent=%d pending=%d received=%d dups=%d connection=%s\n",
			time.Since(start).Seconds(), s.Accepted, s.Confirmed, s.Dropped, s.Resent, s.Pending, recv, dups.Load(), state)
	}
	sec := time.NewTicker(time.Second)
	defer sec.Stop()
	for waiting := true; waiting; {
		select {
		case <-pubDone:
			waiting = false
		case <-sec.C:
			line()
		}
	}

	// Flush, then let the consumer catch up.
	fctx, fcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer fcancel()
	if err := p.Flush(fctx); err != nil {
		fmt.Fprintln(os.Stderr, "demo: flush:", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		s := p.Stats()
		t.mu.Lock()
		recv := uint64(len(t.received))
		t.mu.Unlock()
		if recv >= s.Confirmed && s.Pending == 0 {
			break
		}
		select {
		case <-sec.C:
			line()
		case <-time.After(50 * time.Millisecond):
		}
	}
	line()
	_ = p.Close(fctx)
	stopConsumer()
	wg.Wait()

	if restartAt > 0 {
		select {
		case err := <-restartErr:
			if err != nil {
				fmt.Fprintln(os.Stderr, "demo: broker restart failed:", err)
				return 1
			}
		default:
			fmt.Fprintln(os.Stderr, "demo: the broker restart had not finished")
			return 1
		}
	}

	// Verdict: every accepted message is received or reported dropped.
	s := p.Stats()
	t.mu.Lock()
	defer t.mu.Unlock()
	var lost uint64
	for seq := uint64(0); seq < published.Load(); seq++ {
		if t.received[seq] == 0 {
			if _, ok := t.dropped[seq]; !ok {
				lost++
			}
		}
	}
	fmt.Printf("\nverdict: accepted=%d confirmed=%d dropped=%d received=%d duplicates=%d resent=%d lost=%d\n",
		s.Accepted, s.Confirmed, s.Dropped, len(t.received), dups.Load(), s.Resent, lost)
	if lost > 0 || s.Accepted != published.Load() {
		fmt.Println("FAIL: messages are unaccounted for")
		return 1
	}
	fmt.Println("OK: every accepted message was received or reported dropped")
	return 0
}
