package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/buffer"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

// window is the raw baseline's confirm window: the SDK's default max in flight.
const window = producer.DefaultMaxInFlight

// latencies collects publish-to-confirm latencies from the SDK's hook.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) OnConfirmed(_ string, d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// runPublish publishes N messages of Size bytes from Goroutines goroutines
// and times it until all are confirmed (Confirm) or written
// (FireAndForget). A probe consumer measures end-to-end latency.
func runPublish(ctx context.Context, j job) (result, error) {
	conn, _, q, err := rawSetup(j.URL, j.Scenario)
	if err != nil {
		return result{}, err
	}
	defer cleanup(conn, q)
	pr, err := newProbe(j.URL, q, j.N)
	if err != nil {
		return result{}, err
	}
	var r result
	var confirmLat []time.Duration
	switch j.Impl {
	case "sdk", "sdk-no-mandatory":
		r, confirmLat, err = publishSDK(ctx, j, q)
	case "raw", "raw-sync":
		r, confirmLat, err = publishRaw(j, conn, q)
	case implAMQPRecovery, implGoRabbitMQ:
		r, confirmLat, err = publishPeer(ctx, j, q)
	default:
		err = fmt.Errorf("unknown impl %q", j.Impl)
	}
	if err != nil {
		return r, err
	}
	e2e, err := pr.wait(2 * time.Minute)
	if err != nil {
		return r, err
	}
	r.ConfirmP50, r.ConfirmP95, r.ConfirmP99 = percentile(confirmLat, 50), percentile(confirmLat, 95), percentile(confirmLat, 99)
	r.E2EP50, r.E2EP95, r.E2EP99 = percentile(e2e, 50), percentile(e2e, 95), percentile(e2e, 99)
	return r, nil
}

// split runs f(n) on g goroutines that share n messages and waits for them.
func split(n, g int, f func(count int)) {
	var wg sync.WaitGroup
	for i := range g {
		count := n / g
		if i < n%g {
			count++
		}
		wg.Add(1)
		go func() { defer wg.Done(); f(count) }()
	}
	wg.Wait()
}

func publishSDK(ctx context.Context, j job, q string) (result, []time.Duration, error) {
	c, err := lavinmq.New(j.URL)
	if err != nil {
		return result{}, nil, err
	}
	defer c.Close()
	if err := c.WaitConnected(ctx); err != nil {
		return result{}, nil, err
	}
	mode := producer.Confirm
	if j.Mode == "fire_and_forget" {
		mode = producer.FireAndForget
	}
	lat := &latencies{d: make([]time.Duration, 0, j.N)}
	// "sdk-no-mandatory" does the same work as the raw loop; "sdk" keeps the
	// default mandatory flag, which makes the broker report unroutable messages.
	p, err := producer.New(c, q, producer.WithMode(mode), producer.WithPolicy(buffer.Block), producer.WithHooks(lat),
		producer.WithMandatory(j.Impl != "sdk-no-mandatory"))
	if err != nil {
		return result{}, nil, err
	}
	var failed atomic.Int64
	start := time.Now()
	split(j.N, max(1, j.Goroutines), func(count int) {
		for range count {
			if p.Publish(ctx, producer.Message{Body: body(j.Size)}) != nil {
				failed.Add(1)
			}
		}
	})
	if err := p.Flush(ctx); err != nil {
		return result{}, nil, err
	}
	elapsed := time.Since(start)
	_ = p.Close(ctx)
	s := p.Stats()
	if failed.Load() > 0 || s.Dropped > 0 {
		return result{}, nil, fmt.Errorf("sdk: %d publish errors, %d dropped", failed.Load(), s.Dropped)
	}
	return result{Msgs: j.N, Seconds: elapsed.Seconds(), MsgPerSec: float64(j.N) / elapsed.Seconds(), Confirmed: int64(s.Confirmed)}, lat.d, nil
}

// publishRaw is the loop a user of plain amqp091-go would write. Confirm
// mode ("raw"): a sliding window of unconfirmed messages tracked through
// NotifyPublish; goroutines share one channel, and a mutex keeps each
// delivery tag matched to its send time. "raw-sync": publish, then wait for
// that message's confirm. FireAndForget: Publish in a loop. The body buffer
// is reused (amqp091-go copies it to the socket before Publish returns).
func publishRaw(j job, conn *amqp.Connection, q string) (result, []time.Duration, error) {
	ch, err := conn.Channel()
	if err != nil {
		return result{}, nil, err
	}
	defer ch.Close()
	g := max(1, j.Goroutines)
	if j.Mode == "fire_and_forget" {
		start := time.Now()
		var failed atomic.Int64
		split(j.N, g, func(count int) {
			b := make([]byte, max(j.Size, 8))
			for range count {
				stamp(b)
				if ch.Publish("", q, false, false, amqp.Publishing{Body: b, DeliveryMode: amqp.Transient}) != nil {
					failed.Add(1)
				}
			}
		})
		elapsed := time.Since(start)
		if failed.Load() > 0 {
			return result{}, nil, fmt.Errorf("raw: %d publish errors", failed.Load())
		}
		return result{Msgs: j.N, Seconds: elapsed.Seconds(), MsgPerSec: float64(j.N) / elapsed.Seconds()}, nil, nil
	}
	if err := ch.Confirm(false); err != nil {
		return result{}, nil, err
	}
	if j.Impl == "raw-sync" {
		lat := make([]time.Duration, 0, j.N)
		b := make([]byte, max(j.Size, 8))
		start := time.Now()
		for range j.N {
			stamp(b)
			t := time.Now()
			dc, err := ch.PublishWithDeferredConfirm("", q, false, false, amqp.Publishing{Body: b, DeliveryMode: amqp.Persistent})
			if err != nil {
				return result{}, nil, err
			}
			if !dc.Wait() {
				return result{}, nil, fmt.Errorf("raw-sync: nack")
			}
			lat = append(lat, time.Since(t))
		}
		elapsed := time.Since(start)
		return result{Msgs: j.N, Seconds: elapsed.Seconds(), MsgPerSec: float64(j.N) / elapsed.Seconds(), Confirmed: int64(j.N)}, lat, nil
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, window+1))
	sent := make([]time.Time, j.N+1)
	lat := make([]time.Duration, 0, j.N)
	slots := make(chan struct{}, window)
	var mu sync.Mutex
	acked := make(chan error, 1)
	go func() {
		for range j.N {
			c, ok := <-confirms
			if !ok {
				acked <- fmt.Errorf("raw: channel closed")
				return
			}
			if !c.Ack {
				acked <- fmt.Errorf("raw: nack")
				return
			}
			mu.Lock()
			lat = append(lat, time.Since(sent[c.DeliveryTag]))
			mu.Unlock()
			<-slots
		}
		acked <- nil
	}()
	start := time.Now()
	var failed atomic.Int64
	split(j.N, g, func(count int) {
		b := make([]byte, max(j.Size, 8))
		for range count {
			slots <- struct{}{}
			stamp(b)
			mu.Lock()
			sent[ch.GetNextPublishSeqNo()] = time.Now()
			err := ch.Publish("", q, false, false, amqp.Publishing{Body: b, DeliveryMode: amqp.Persistent})
			mu.Unlock()
			if err != nil {
				failed.Add(1)
			}
		}
	})
	if failed.Load() > 0 {
		return result{}, nil, fmt.Errorf("raw: %d publish errors", failed.Load())
	}
	if err := <-acked; err != nil {
		return result{}, nil, err
	}
	elapsed := time.Since(start)
	return result{Msgs: j.N, Seconds: elapsed.Seconds(), MsgPerSec: float64(j.N) / elapsed.Seconds(), Confirmed: int64(j.N)}, lat, nil
}
