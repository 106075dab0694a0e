package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// workerCmd runs one job (JSON in -job) and prints its result as JSON.
func workerCmd(args []string) error {
	fs := flag.NewFlagSet("worker", flag.ExitOnError)
	spec := fs.String("job", "", "job as JSON")
	url := fs.String("url", "", "broker URL")
	_ = fs.Parse(args)
	var j job
	if err := json.Unmarshal([]byte(*spec), &j); err != nil {
		return fmt.Errorf("job: %w", err)
	}
	j.URL = *url
	if j.Scenario == "soak" { // runs longer than the others' 5 minutes and prints its own result
		return soakWorker(j.URL, j)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var r result
	var err error
	switch j.Scenario {
	case "baseline", "payload", "concurrency":
		r, err = runPublish(ctx, j)
	case "consume":
		r, err = runConsume(ctx, j)
	case "burst":
		r, err = runBurst(ctx, j)
	case "slow":
		r, err = runSlow(ctx, j)
	case "timeline":
		r, err = runTimeline(ctx, j)
	case "latency":
		r, err = runLatency(ctx, j)
	case "outage":
		r, err = runOutage(ctx, j)
	default:
		err = fmt.Errorf("unknown scenario %q", j.Scenario)
	}
	if err != nil {
		return err
	}
	r.Job = j
	return json.NewEncoder(os.Stdout).Encode(r)
}

// body returns a message of size bytes that starts with the current time,
// so the consumer can measure end-to-end latency.
func body(size int) []byte {
	b := make([]byte, max(size, 8))
	binary.BigEndian.PutUint64(b, uint64(time.Now().UnixNano()))
	return b
}

func stamp(b []byte) { binary.BigEndian.PutUint64(b, uint64(time.Now().UnixNano())) }

func sentAt(b []byte) time.Time {
	if len(b) < 8 {
		return time.Time{}
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(b)))
}

// rawSetup opens a plain connection and declares a fresh durable queue.
func rawSetup(url, prefix string) (*amqp.Connection, *amqp.Channel, string, error) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return nil, nil, "", err
	}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		return nil, nil, "", err
	}
	q := fmt.Sprintf("bench-%s-%d", prefix, time.Now().UnixNano())
	if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
		conn.Close()
		return nil, nil, "", err
	}
	return conn, ch, q, nil
}

func cleanup(conn *amqp.Connection, q string) {
	if ch, err := conn.Channel(); err == nil {
		_, _ = ch.QueueDelete(q, false, false, false)
	}
	conn.Close()
}

// probe consumes q with auto-ack on its own connection and records the
// end-to-end latency of every message (from the time stamped in its body).
type probe struct {
	conn *amqp.Connection
	mu   sync.Mutex
	lat  []time.Duration
	got  chan struct{} // closed when want messages arrived
	want int
	done chan struct{}
}

func newProbe(url, q string, want int) (*probe, error) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		return nil, err
	}
	_ = ch.Qos(2000, 0, false)
	ds, err := ch.Consume(q, "", true, false, false, false, nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	p := &probe{conn: conn, lat: make([]time.Duration, 0, want), got: make(chan struct{}), want: want, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		n := 0
		for d := range ds {
			now := time.Now()
			p.mu.Lock()
			p.lat = append(p.lat, now.Sub(sentAt(d.Body)))
			p.mu.Unlock()
			if n++; n == want {
				close(p.got)
			}
		}
	}()
	return p, nil
}

// wait waits until every message arrived (or timeout), stops, and returns
// the latencies.
func (p *probe) wait(timeout time.Duration) ([]time.Duration, error) {
	var err error
	select {
	case <-p.got:
	case <-time.After(timeout):
		err = errors.New("probe: not every message arrived")
	}
	p.conn.Close()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lat, err
}
