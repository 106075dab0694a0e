package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

// Fault times of the reconnection timeline, from the start of publishing.
const (
	closeAt   = 4 * time.Second // rabbitmqctl close_all_connections
	restartAt = 9 * time.Second // scripts/broker.sh restart (SDK only)
)

// runTimeline publishes at Rate in Confirm mode for Duration and records the
// confirms of every 100 ms, across a forced connection close and a broker
// restart. The raw loop has no reconnect: it stops at the first error.
func runTimeline(ctx context.Context, j job) (result, error) {
	conn, _, q, err := rawSetup(j.URL, "timeline")
	if err != nil {
		return result{}, err
	}
	conn.Close() // the restart would kill it; the queue is durable
	var confirmed atomic.Int64
	var publish func() error
	var finish func() error
	if j.Impl == "sdk" {
		c, err := lavinmq.New(j.URL)
		if err != nil {
			return result{}, err
		}
		defer c.Close()
		p, err := producer.New(c, q, producer.WithBufferSize(100_000))
		if err != nil {
			return result{}, err
		}
		publish = func() error { return p.Publish(ctx, producer.Message{Body: body(j.Size)}) }
		go func() {
			for ctx.Err() == nil {
				confirmed.Store(int64(p.Stats().Confirmed))
				time.Sleep(5 * time.Millisecond)
			}
		}()
		finish = func() error {
			fctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			err := p.Close(fctx)
			confirmed.Store(int64(p.Stats().Confirmed))
			return err
		}
	} else {
		rc, err := amqp.Dial(j.URL)
		if err != nil {
			return result{}, err
		}
		defer rc.Close()
		ch, err := rc.Channel()
		if err != nil {
			return result{}, err
		}
		_ = ch.Confirm(false)
		confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 1<<20))
		go func() {
			for c := range confirms {
				if c.Ack {
					confirmed.Add(1)
				}
			}
		}()
		publish = func() error {
			return ch.Publish("", q, false, false, amqp.Publishing{Body: body(j.Size), DeliveryMode: amqp.Persistent})
		}
		finish = func() error { return nil }
	}

	faults, nFaults := make(chan error, 2), 1
	start := time.Now()
	time.AfterFunc(closeAt, func() { faults <- broker("ctl", "close_all_connections", "bench") })
	var upAt atomic.Int64 // when the restarted broker answered again, ns since start
	if j.Impl == "sdk" {
		nFaults++
		time.AfterFunc(restartAt, func() {
			err := broker("restart")
			upAt.Store(int64(time.Since(start)))
			faults <- err
		})
	}
	var series []point
	var last int64
	stoppedAt := time.Duration(0)
	pace := time.NewTicker(10 * time.Millisecond)
	defer pace.Stop()
	bucket := time.NewTicker(100 * time.Millisecond)
	defer bucket.Stop()
	sent := 0
	for time.Since(start) < j.Duration {
		select {
		case <-pace.C:
			want := int(time.Since(start).Seconds() * float64(j.Rate))
			for ; sent < want && stoppedAt == 0; sent++ {
				if err := publish(); err != nil {
					stoppedAt = time.Since(start)
				}
			}
		case <-bucket.C:
			n := confirmed.Load()
			series = append(series, point{T: time.Since(start).Seconds(), V: float64(n - last)})
			last = n
		}
	}
	ferr := finish()
	for range nFaults {
		if err := <-faults; err != nil {
			return result{}, err
		}
	}
	note := fmt.Sprintf("close_all_connections at %v", closeAt)
	if j.Impl == "sdk" {
		note += fmt.Sprintf(", broker restart at %v (answering again at %.1fs)", restartAt, time.Duration(upAt.Load()).Seconds())
		if ferr != nil {
			note += "; close: " + ferr.Error()
		}
	} else if stoppedAt > 0 {
		note += fmt.Sprintf("; the raw loop stopped at %.1fs with a publish error (no reconnect)", stoppedAt.Seconds())
	}
	cleanupQueue(j.URL, q)
	return result{Msgs: sent, Seconds: j.Duration.Seconds(), MsgPerSec: float64(confirmed.Load()) / j.Duration.Seconds(),
		Confirmed: confirmed.Load(), Accepted: int64(sent), Series: series, Note: note}, nil
}

func cleanupQueue(url, q string) {
	if conn, err := amqp.Dial(url); err == nil {
		cleanup(conn, q)
	}
}
