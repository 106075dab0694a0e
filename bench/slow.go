package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

// runSlow publishes at Rate for Duration while a consumer that needs 1 ms
// per message (prefetch 100) falls behind; the queue depth is sampled every
// 250 ms until the consumer has caught up. SDK producer and consumer, or
// plain amqp091-go for both.
func runSlow(ctx context.Context, j job) (result, error) {
	conn, ch, q, err := rawSetup(j.URL, "slow")
	if err != nil {
		return result{}, err
	}
	defer cleanup(conn, q)
	total := int(float64(j.Rate) * j.Duration.Seconds())
	var consumed atomic.Int64
	handle := func() { time.Sleep(time.Millisecond); consumed.Add(1) }

	var publish func() error
	var stopAll func()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if j.Impl == "sdk" {
		c, err := lavinmq.New(j.URL)
		if err != nil {
			return result{}, err
		}
		defer c.Close()
		p, err := producer.New(c, q)
		if err != nil {
			return result{}, err
		}
		k, err := consumer.New(c, q, consumer.WithPrefetch(100))
		if err != nil {
			return result{}, err
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = k.Run(runCtx, func(context.Context, consumer.Delivery) consumer.Action { handle(); return consumer.Ack })
		}()
		publish = func() error { return p.Publish(ctx, producer.Message{Body: body(j.Size)}) }
		stopAll = func() { _ = p.Close(ctx); cancel(); <-done }
	} else {
		cc, err := amqp.Dial(j.URL)
		if err != nil {
			return result{}, err
		}
		defer cc.Close()
		cch, err := cc.Channel()
		if err != nil {
			return result{}, err
		}
		_ = cch.Qos(100, 0, false)
		ds, err := cch.Consume(q, "", false, false, false, false, nil)
		if err != nil {
			return result{}, err
		}
		go func() {
			for d := range ds {
				handle()
				_ = d.Ack(false)
			}
		}()
		pch, err := conn.Channel()
		if err != nil {
			return result{}, err
		}
		_ = pch.Confirm(false)
		confirms := pch.NotifyPublish(make(chan amqp.Confirmation, total+1))
		go func() {
			for range confirms { // drained: amqp091-go blocks on this channel otherwise
			}
		}()
		publish = func() error {
			return pch.Publish("", q, false, false, amqp.Publishing{Body: body(j.Size), DeliveryMode: amqp.Persistent})
		}
		stopAll = func() { cc.Close() }
	}

	start := time.Now()
	var series []point
	sample := time.NewTicker(250 * time.Millisecond)
	defer sample.Stop()
	pace := time.NewTicker(10 * time.Millisecond)
	defer pace.Stop()
	sent := 0
	deadline := start.Add(j.Duration + 2*time.Minute)
	for consumed.Load() < int64(total) && time.Now().Before(deadline) {
		select {
		case <-pace.C:
			want := min(total, int(time.Since(start).Seconds()*float64(j.Rate)))
			for ; sent < want; sent++ {
				if err := publish(); err != nil {
					return result{}, err
				}
			}
		case <-sample.C:
			if qi, err := ch.QueueDeclarePassive(q, true, false, false, false, nil); err == nil {
				series = append(series, point{T: time.Since(start).Seconds(), V: float64(qi.Messages)})
			}
		}
	}
	elapsed := time.Since(start)
	stopAll()
	if consumed.Load() < int64(total) {
		return result{}, fmt.Errorf("slow: consumed %d of %d", consumed.Load(), total)
	}
	peak := 0.0
	for _, p := range series {
		peak = max(peak, p.V)
	}
	return result{Msgs: total, Seconds: elapsed.Seconds(), MsgPerSec: float64(total) / elapsed.Seconds(), Series: series,
		Note: fmt.Sprintf("peak depth %.0f", peak)}, nil
}
