package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/buffer"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

// runLatency offers Rate msg/s for Duration (open loop: message i is due at
// start + i/Rate whatever happened to the ones before it) and measures each
// message's latency from its due time to its confirm: a caller held by a full
// window or a slow call shows up in the latency of every message it delays.
// Rate is a percentage of the raw Confirm maximum measured earlier in the same
// run (runCmd sets it). Confirm mode, persistent messages, one caller goroutine.
func runLatency(ctx context.Context, j job) (result, error) {
	conn, _, q, err := rawSetup(j.URL, "latency")
	if err != nil {
		return result{}, err
	}
	defer cleanup(conn, q)
	if j.Percent == 0 {
		return rawMax(j, conn, q)
	}
	n := max(1, int(float64(j.Rate)*j.Duration.Seconds()))
	var lat []time.Duration
	var elapsed time.Duration
	note := ""
	switch {
	case j.Impl == "sdk":
		lat, elapsed, err = latencySDK(ctx, j, q, n)
	case j.Impl == "raw":
		lat, elapsed, err = latencyRaw(j, conn, q, n)
	case isPeer(j.Impl):
		var pr peer
		if pr, err = newPeer(j.Impl, j.URL, q); err != nil {
			return result{}, err
		}
		lat, elapsed, err = deferredRun(ctx, pr, n, j.Size, j.Rate, window)
		note = pr.note()
		pr.close()
	default:
		err = fmt.Errorf("unknown impl %q", j.Impl)
	}
	if err != nil {
		return result{}, fmt.Errorf("%s: %w", j.Impl, err)
	}
	if len(lat) != n {
		return result{}, fmt.Errorf("%s: %d latencies for %d messages", j.Impl, len(lat), n)
	}
	return result{
		Msgs: n, Seconds: elapsed.Seconds(), MsgPerSec: float64(n) / elapsed.Seconds(), Confirmed: int64(n),
		Offered: float64(j.Rate), LatP50: percentile(lat, 50), LatP99: percentile(lat, 99), LatMax: percentile(lat, 100),
		Note: note,
	}, nil
}

// openLoopHook turns the SDK's OnConfirmed hook into per-message latencies
// from the due time: with one producer, one caller goroutine, no fault and
// no nack, confirms settle in publish order (amqp091-go delivers them in tag
// order and the producer settles its window in that order), so the k-th
// call is message k. The hook's own latency (from Publish) can never exceed
// that (Publish is called at or after the due time); mismatched counts it if
// it does, which would mean the order assumption broke.
type openLoopHook struct {
	s          schedule
	mu         sync.Mutex
	lat        []time.Duration
	mismatched int
}

func (h *openLoopHook) OnConfirmed(_ string, fromPublish time.Duration) {
	now := time.Now()
	h.mu.Lock()
	l := now.Sub(h.s.due(len(h.lat)))
	if fromPublish > l+time.Millisecond {
		h.mismatched++
	}
	h.lat = append(h.lat, l)
	h.mu.Unlock()
}

// latencySDK: the SDK with its defaults (Confirm, mandatory on), the Block
// policy so that a full buffer holds the caller (and shows in the latency).
func latencySDK(ctx context.Context, j job, q string, n int) ([]time.Duration, time.Duration, error) {
	c, err := lavinmq.New(j.URL)
	if err != nil {
		return nil, 0, err
	}
	defer c.Close()
	if err := c.WaitConnected(ctx); err != nil {
		return nil, 0, err
	}
	h := &openLoopHook{lat: make([]time.Duration, 0, n)}
	p, err := producer.New(c, q, producer.WithPolicy(buffer.Block), producer.WithHooks(h))
	if err != nil {
		return nil, 0, err
	}
	h.s = schedule{start: time.Now(), rate: j.Rate}
	for i := range n {
		h.s.wait(i)
		if err := p.Publish(ctx, producer.Message{Body: body(j.Size)}); err != nil {
			return nil, 0, err
		}
	}
	if err := p.Flush(ctx); err != nil {
		return nil, 0, err
	}
	elapsed := time.Since(h.s.start)
	_ = p.Close(ctx)
	h.mu.Lock()
	defer h.mu.Unlock()
	if s := p.Stats(); s.Dropped > 0 || h.mismatched > 0 {
		return nil, 0, fmt.Errorf("%d dropped, %d confirms out of publish order", s.Dropped, h.mismatched)
	}
	return h.lat, elapsed, nil
}

// latencyRaw: the raw Confirm loop of publishRaw (a window of unconfirmed
// messages tracked through NotifyPublish) on the schedule. Tag k is message
// k-1, so the confirm goroutine computes the due time from the tag.
func latencyRaw(j job, conn *amqp.Connection, q string, n int) ([]time.Duration, time.Duration, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, 0, err
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		return nil, 0, err
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, window+1))
	slots := make(chan struct{}, window)
	s := schedule{start: time.Now(), rate: j.Rate}
	lat := make([]time.Duration, 0, n)
	acked := make(chan error, 1)
	go func() {
		for range n {
			c, ok := <-confirms
			if !ok {
				acked <- fmt.Errorf("channel closed")
				return
			}
			if !c.Ack {
				acked <- fmt.Errorf("nack")
				return
			}
			lat = append(lat, time.Since(s.due(int(c.DeliveryTag-1))))
			<-slots
		}
		acked <- nil
	}()
	b := make([]byte, max(j.Size, 8))
	for i := range n {
		s.wait(i)
		slots <- struct{}{}
		stamp(b)
		if err := ch.Publish("", q, false, false, amqp.Publishing{Body: b, DeliveryMode: amqp.Persistent}); err != nil {
			return nil, 0, err
		}
	}
	if err := <-acked; err != nil {
		return nil, 0, err
	}
	return lat, time.Since(s.start), nil
}

// rawMax is the latency scenario's reference: the raw Confirm loop (window
// as in publishRaw) as fast as it goes for the scenario's Duration, so the
// maximum is a sustained rate over as long as the offered-rate runs last (a
// short burst of the baseline overstates what a broker sustains: RabbitMQ
// takes a burst of 20 000 persistent messages far faster than it keeps up).
func rawMax(j job, conn *amqp.Connection, q string) (result, error) {
	ch, err := conn.Channel()
	if err != nil {
		return result{}, err
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		return result{}, err
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, window+1))
	slots := make(chan struct{}, window)
	acked := make(chan int, 1)
	sent := make(chan int, 1) // the final count, once the loop has stopped
	go func() {
		n, total := 0, -1
		for total < 0 || n < total {
			select {
			case c, ok := <-confirms:
				if !ok || !c.Ack {
					acked <- -1
					return
				}
				n++
				<-slots
			case total = <-sent:
			}
		}
		acked <- n
	}()
	b := make([]byte, max(j.Size, 8))
	start := time.Now()
	n := 0
	for time.Since(start) < j.Duration {
		slots <- struct{}{}
		stamp(b)
		if err := ch.Publish("", q, false, false, amqp.Publishing{Body: b, DeliveryMode: amqp.Persistent}); err != nil {
			return result{}, err
		}
		n++
	}
	sent <- n
	if got := <-acked; got != n {
		return result{}, fmt.Errorf("raw max: %d of %d acked", got, n)
	}
	elapsed := time.Since(start)
	return result{Msgs: n, Seconds: elapsed.Seconds(), MsgPerSec: float64(n) / elapsed.Seconds(), Confirmed: int64(n)}, nil
}
