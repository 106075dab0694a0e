package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

// crashAt is when the outage scenario SIGKILLs the broker (then starts it
// again at once), from the start of publishing.
const crashAt = 4 * time.Second

// outageLedger is what one library's caller saw, per message ID (0..n-1).
type outageLedger struct {
	mu       sync.Mutex
	accepted []bool // the publish call returned success
	failed   []bool // the caller was told it failed
}

func newLedger(n int) *outageLedger {
	return &outageLedger{accepted: make([]bool, n), failed: make([]bool, n)}
}

func (l *outageLedger) accept(i int) { l.mu.Lock(); l.accepted[i] = true; l.mu.Unlock() }
func (l *outageLedger) fail(i int)   { l.mu.Lock(); l.failed[i] = true; l.mu.Unlock() }

// outageBody is a 16-byte (or larger) body: the send time, then the message ID.
func outageBody(size, i int) []byte {
	b := body(max(size, 16))
	binary.BigEndian.PutUint64(b[8:], uint64(i))
	return b
}

func outageID(b []byte) (int, bool) {
	if len(b) < 16 {
		return 0, false
	}
	return int(binary.BigEndian.Uint64(b[8:])), true
}

// runOutage publishes at Rate for Duration (open loop) on a durable queue,
// SIGKILLs the broker at crashAt and starts it again, then reads the queue
// dry and settles every message ID: received (and how many copies), reported
// failed to the caller, or neither (silently lost). MaxCallMs is the longest
// time one message held the caller: one Publish call for the SDK; for the
// peers the library call plus the retries a caller of that library makes
// after an error (each peer's retryWait).
func runOutage(ctx context.Context, j job) (result, error) {
	conn, _, q, err := rawSetup(j.URL, "outage")
	if err != nil {
		return result{}, err
	}
	conn.Close() // the crash kills it; the queue is durable
	n := int(float64(j.Rate) * j.Duration.Seconds())
	led := newLedger(n)

	var pub func(i int) (time.Duration, error) // publishes message i, returns how long it held the caller
	var finish func() (unsettled int, note string, err error)
	runCtx, cancel := context.WithTimeout(ctx, j.Duration+2*time.Minute)
	defer cancel()
	if j.Impl == "sdk" {
		pub, finish, err = outageSDK(runCtx, j, q, n, led)
	} else {
		pub, finish, err = outagePeer(runCtx, j, q, n, led)
	}
	if err != nil {
		return result{}, err
	}

	start := time.Now()
	type fault struct {
		killed, up time.Duration
		err        error
	}
	faults := make(chan fault, 1)
	time.AfterFunc(crashAt, func() {
		f := fault{killed: time.Since(start)}
		if f.err = broker("kill"); f.err == nil {
			f.err = broker("start")
		}
		f.up = time.Since(start)
		faults <- f
	})
	s := schedule{start: start, rate: j.Rate}
	var maxHold time.Duration
	for i := range n {
		s.wait(i)
		hold, err := pub(i)
		maxHold = max(maxHold, hold)
		if err != nil {
			return result{}, err
		}
	}
	offered := time.Since(start)
	f := <-faults
	if f.err != nil {
		return result{}, f.err
	}
	unsettled, note, err := finish()
	if err != nil {
		return result{}, err
	}
	counts, err := drainCounts(runCtx, j.URL, q, n)
	if err != nil {
		return result{}, err
	}
	r := result{Msgs: n, Seconds: offered.Seconds(), MsgPerSec: float64(n) / offered.Seconds(), MaxCallMs: float64(maxHold) / 1e6,
		Unsettled: int64(unsettled)}
	firstLost, lastLost := -1, -1
	for i := range n {
		got := counts[i]
		if got > 0 {
			r.Received++
			r.Duplicates += int64(got - 1)
		}
		if led.accepted[i] {
			r.Accepted++
		}
		if led.failed[i] {
			r.Failed++
			if got > 0 {
				r.FailedButReceived++
			}
		} else if led.accepted[i] && got == 0 {
			r.Lost++
			if firstLost < 0 {
				firstLost = i
			}
			lastLost = i
		}
	}
	r.Note = fmt.Sprintf("SIGKILL at %.1fs, broker answering again at %.1fs; offered in %.1fs", f.killed.Seconds(), f.up.Seconds(), offered.Seconds())
	if note != "" {
		r.Note += "; " + note
	}
	if r.Lost > 0 { // message i was due at i/Rate s
		r.Note += fmt.Sprintf("; lost IDs between %d and %d (due at %.2fs–%.2fs)", firstLost, lastLost,
			float64(firstLost)/float64(j.Rate), float64(lastLost)/float64(j.Rate))
	}
	return r, nil
}

// outageSDK: the SDK with its defaults (Confirm, DropOldest) and a buffer
// that holds the whole run, so that the outage is absorbed rather than
// evicted; OnDrop tells the caller what failed.
func outageSDK(ctx context.Context, j job, q string, n int, led *outageLedger) (func(int) (time.Duration, error), func() (int, string, error), error) {
	c, err := lavinmq.New(j.URL)
	if err != nil {
		return nil, nil, err
	}
	if err := c.WaitConnected(ctx); err != nil {
		c.Close()
		return nil, nil, err
	}
	p, err := producer.New(c, q, producer.WithBufferSize(n), producer.OnDrop(func(m producer.Message, _ string, _ producer.DropReason) {
		if i, ok := outageID(m.Body); ok && i < n {
			led.fail(i)
		}
	}))
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	pub := func(i int) (time.Duration, error) {
		t := time.Now()
		err := p.Publish(ctx, producer.Message{Body: outageBody(j.Size, i)})
		d := time.Since(t)
		if err != nil {
			led.fail(i) // refused at the call: the caller knows
		} else {
			led.accept(i)
		}
		return d, nil
	}
	finish := func() (int, string, error) {
		defer c.Close()
		fctx, stop := context.WithTimeout(ctx, time.Minute)
		defer stop()
		ferr := p.Flush(fctx)
		_ = p.Close(fctx) // whatever is still buffered is reported through OnDrop
		s := p.Stats()
		note := fmt.Sprintf("resent %d", s.Resent)
		if ferr != nil {
			note += "; flush: " + ferr.Error()
		}
		return 0, note, nil
	}
	return pub, finish, nil
}

// outagePeer drives a peer: each message is published, and on an error the
// caller does what that library's caller does (retryWait) and tries again,
// until the run's deadline (then the message counts as failed: the caller
// knows). Deferred confirmations are awaited on a separate goroutine; a nack
// tells the caller the message failed (re-sending it is left to the caller,
// as both libraries leave it).
func outagePeer(ctx context.Context, j job, q string, n int, led *outageLedger) (func(int) (time.Duration, error), func() (int, string, error), error) {
	pr, err := newPeer(j.Impl, j.URL, q)
	if err != nil {
		return nil, nil, err
	}
	in := make(chan pendingConfirm, n)
	waitCtx, stopWait := context.WithCancel(ctx)
	done := make(chan int, 1)
	go func() {
		done <- awaitConfirms(waitCtx, in, func(p pendingConfirm, acked bool) {
			if !acked {
				led.fail(p.i)
			}
		})
	}()
	giveUp := time.Now().Add(j.Duration + 45*time.Second)
	var longestCall time.Duration
	var errs int
	pub := func(i int) (time.Duration, error) {
		t := time.Now()
		for {
			c := time.Now()
			dc, err := pr.publish(ctx, outageBody(j.Size, i))
			longestCall = max(longestCall, time.Since(c))
			if err == nil && (dc != nil || j.Impl == implGoRabbitMQPlain) {
				led.accept(i)
				if dc != nil {
					in <- pendingConfirm{i: i, due: t, dc: dc}
				}
				return time.Since(t), nil
			}
			if err == nil {
				return 0, errors.New("no deferred confirmation: the channel is not in confirm mode")
			}
			errs++
			if time.Now().After(giveUp) || ctx.Err() != nil {
				led.fail(i)
				return time.Since(t), nil
			}
			pr.retryWait(ctx)
		}
	}
	finish := func() (int, string, error) {
		close(in)
		t := time.AfterFunc(30*time.Second, stopWait) // a confirmation that never resolves
		unsettled := <-done
		t.Stop()
		stopWait()
		note := fmt.Sprintf("%d publish errors retried; longest single library call %.0f ms", errs, float64(longestCall)/1e6)
		if s := pr.note(); s != "" {
			note += "; " + s
		}
		pr.close()
		return unsettled, note, nil
	}
	return pub, finish, nil
}

// drainCounts reads the queue dry on a fresh connection (the broker may still
// be starting) and counts the copies of each message ID; it stops once the
// queue reports empty and nothing arrived for a second.
func drainCounts(ctx context.Context, url, q string, n int) ([]int, error) {
	var conn *amqp.Connection
	var err error
	for deadline := time.Now().Add(time.Minute); ; {
		if conn, err = amqp.Dial(url); err == nil || time.Now().After(deadline) {
			break
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
	if err != nil {
		return nil, fmt.Errorf("drain: %w", err)
	}
	defer cleanup(conn, q)
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	if err := ch.Qos(1000, 0, false); err != nil {
		return nil, err
	}
	ds, err := ch.Consume(q, "", true, false, false, false, nil)
	if err != nil {
		return nil, fmt.Errorf("drain: %w", err)
	}
	counts := make([]int, n)
	idle := time.NewTimer(time.Second)
	defer idle.Stop()
	for {
		select {
		case d, ok := <-ds:
			if !ok {
				return nil, errors.New("drain: deliveries closed")
			}
			if i, ok := outageID(d.Body); ok && i < n {
				counts[i]++
			}
			idle.Reset(time.Second)
		case <-idle.C:
			pc, err := conn.Channel()
			if err != nil {
				return nil, err
			}
			qi, err := pc.QueueDeclarePassive(q, true, false, false, false, nil)
			_ = pc.Close()
			if err != nil {
				return nil, err
			}
			if qi.Messages == 0 {
				_ = ch.Close()
				return counts, nil
			}
			idle.Reset(time.Second)
		case <-ctx.Done():
			return nil, fmt.Errorf("drain: %w", ctx.Err())
		}
	}
}
