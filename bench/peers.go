package main

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The libraries a user would pick instead of this SDK, each behind the same
// small interface so that the throughput, latency and outage scenarios drive
// them with the same loop: amqp091-go with its own Config.Recovery
// (peer_amqp091.go) and wagslane/go-rabbitmq (peer_gorabbitmq.go). How each
// one is set up, publishes, waits for confirms, retries a failed publish and
// consumes is in its own file, written the way that library's docs show.
const (
	implAMQPRecovery = "amqp091-recovery"
	implGoRabbitMQ   = "go-rabbitmq"
	// implGoRabbitMQPlain is go-rabbitmq's Quick Start publisher: Publish
	// without confirm mode (outage scenario only: nothing to await).
	implGoRabbitMQPlain = "go-rabbitmq-publish"
)

// peer is one library's publisher and consumer on one queue.
type peer interface {
	// publish sends one persistent message to the queue and returns the
	// library's deferred confirmation for it (nil for a publisher without
	// confirms).
	publish(ctx context.Context, body []byte) (*amqp.DeferredConfirmation, error)
	// retryWait is what a caller of this library does after a failed
	// publish before trying the same message again (per its docs).
	retryWait(ctx context.Context)
	// consume reads n messages from the queue with prefetch 100 and a manual
	// ack of each, the library's own consumer API.
	consume(ctx context.Context, n int) error
	// note says what the library logged or did of interest (reconnects).
	note() string
	close()
}

func newPeer(impl, url, q string) (peer, error) {
	switch impl {
	case implAMQPRecovery:
		return newAMQPRecoveryPeer(url, q)
	case implGoRabbitMQ:
		return newGoRabbitMQPeer(url, q, true)
	case implGoRabbitMQPlain:
		return newGoRabbitMQPeer(url, q, false)
	}
	return nil, fmt.Errorf("unknown peer %q", impl)
}

func isPeer(impl string) bool {
	return impl == implAMQPRecovery || impl == implGoRabbitMQ || impl == implGoRabbitMQPlain
}

// schedule is an open-loop send schedule: message i is due at start + i/rate.
// Latency measured from due(i) includes any time the caller was held before
// it could send, so a stall is not hidden (no coordinated omission). Rate 0
// means as fast as possible: each message is due when the loop gets to it.
type schedule struct {
	start time.Time
	rate  int
}

func (s schedule) due(i int) time.Time {
	return s.start.Add(time.Duration(int64(i) * int64(time.Second) / int64(max(1, s.rate))))
}

// wait sleeps until message i is due and returns its due time.
func (s schedule) wait(i int) time.Time {
	if s.rate <= 0 {
		return time.Now()
	}
	d := s.due(i)
	if w := time.Until(d); w > 0 {
		time.Sleep(w)
	}
	return d
}

// pendingConfirm is one published message whose confirm is awaited.
type pendingConfirm struct {
	i   int
	due time.Time
	dc  *amqp.DeferredConfirmation
}

// awaitConfirms waits for the deferred confirmations sent on in, in publish
// order (DeferredConfirmation.Done, then Acked, as amqp091-go documents it),
// and calls settled for each with whether the broker acked it; it returns
// when in is closed and drained, or with the pending ones unsettled when ctx
// ends (a confirmation that never resolves: amqp091-go issues #46, #182).
func awaitConfirms(ctx context.Context, in <-chan pendingConfirm, settled func(p pendingConfirm, acked bool)) (unsettled int) {
	for p := range in {
		select {
		case <-p.dc.Done():
			settled(p, p.dc.Acked())
		case <-ctx.Done():
			unsettled++
		}
	}
	return unsettled
}

// deferredRun publishes n messages of size bytes through pr on the schedule
// (rate 0: as fast as possible) with at most window unconfirmed, and returns
// each message's latency from its due time to its confirm and the time until
// the last confirm. A nack or a publish error fails the run: none is expected
// without a fault.
func deferredRun(ctx context.Context, pr peer, n, size, rate, window int) ([]time.Duration, time.Duration, error) {
	lat := make([]time.Duration, n) // written by the waiter goroutine only, read after it ended
	in := make(chan pendingConfirm, max(1, window-1))
	var nacks atomic.Int64
	done := make(chan int)
	go func() {
		done <- awaitConfirms(ctx, in, func(p pendingConfirm, acked bool) {
			lat[p.i] = time.Since(p.due)
			if !acked {
				nacks.Add(1)
			}
		})
	}()
	s := schedule{start: time.Now(), rate: rate}
	var err error
	for i := range n {
		due := s.wait(i)
		var dc *amqp.DeferredConfirmation
		if dc, err = pr.publish(ctx, body(size)); err == nil && dc == nil {
			err = errors.New("no deferred confirmation: the channel is not in confirm mode")
		}
		if err != nil {
			err = fmt.Errorf("publish %d: %w", i, err)
			break
		}
		in <- pendingConfirm{i: i, due: due, dc: dc}
	}
	close(in)
	unsettled := <-done
	elapsed := time.Since(s.start)
	switch {
	case err != nil:
		return nil, 0, err
	case unsettled > 0 || nacks.Load() > 0:
		return nil, 0, fmt.Errorf("%d nacked, %d never confirmed", nacks.Load(), unsettled)
	}
	return lat, elapsed, nil
}

// publishPeer is the baseline Confirm row for a peer: n messages as fast as
// the library's confirm API allows with the raw loop's window.
func publishPeer(ctx context.Context, j job, q string) (result, []time.Duration, error) {
	pr, err := newPeer(j.Impl, j.URL, q)
	if err != nil {
		return result{}, nil, err
	}
	defer pr.close()
	lat, elapsed, err := deferredRun(ctx, pr, j.N, j.Size, 0, window)
	if err != nil {
		return result{}, nil, fmt.Errorf("%s: %w", j.Impl, err)
	}
	return result{Msgs: j.N, Seconds: elapsed.Seconds(), MsgPerSec: float64(j.N) / elapsed.Seconds(), Confirmed: int64(j.N), Note: pr.note()}, lat, nil
}
