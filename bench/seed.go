package main

import (
	"context"
	"time"

	"github.com/c3ecadf2/lavinmq-go/buffer"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

// seedFigure measures what the seed's "1.68M msg/s" measured: 10_000
// enqueues into an empty buffer, one goroutine, nothing sent anywhere.
type seedFigure struct {
	What       string  `json:"what"`
	Median10k  float64 `json:"median_us_per_10000"` // microseconds for 10_000 enqueues, median of 21 runs
	PerSecond  float64 `json:"per_second"`          // 10_000 / that time
	SeedMillis float64 `json:"seed_ms"`             // the seed's figure for the same work
}

const seedMillis = 5.95

func measureSeed() []seedFigure {
	msg := producer.Message{Body: make([]byte, 16)}
	time10k := func(setup func() func(i int)) float64 {
		var runs []float64
		for range 21 {
			push := setup()
			start := time.Now()
			for i := range 10_000 {
				push(i)
			}
			runs = append(runs, float64(time.Since(start).Microseconds()))
		}
		return median(runs)
	}
	fig := func(what string, us float64) seedFigure {
		return seedFigure{What: what, Median10k: us, PerSecond: 10_000 / (us / 1e6), SeedMillis: seedMillis}
	}
	// The ring and the channel are allocated once and emptied between runs
	// (not timed), so the figure is the push, not the first touch of memory.
	r := buffer.New[producer.Message](10_000)
	ring := time10k(func() func(int) {
		for _, ok := r.TryPop(); ok; _, ok = r.TryPop() {
		}
		return func(int) { r.TryPush(msg) }
	})
	c := make(chan producer.Message, 10_000)
	ch := time10k(func() func(int) {
		for len(c) > 0 {
			<-c
		}
		return func(int) { c <- msg }
	})
	// The whole Publish call of a producer whose client is not connected:
	// validation, counters and the ring push, on a fresh producer each run
	// (so this one does include the first touch of the buffer's memory).
	cl, _ := lavinmq.New("amqp://guest:guest@127.0.0.1:1/", lavinmq.WithReconnectDelay(time.Second, time.Second))
	defer cl.Close()
	var ps []*producer.Producer
	pub := time10k(func() func(int) {
		p, _ := producer.New(cl, "seed", producer.WithBufferSize(10_000))
		ps = append(ps, p)
		return func(int) { _ = p.Publish(context.Background(), msg) }
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, p := range ps {
		_ = p.Close(ctx)
	}
	return []seedFigure{
		fig("buffer.Ring TryPush of a producer.Message (warm ring)", ring),
		fig("buffered Go channel send of a producer.Message (warm channel)", ch),
		fig("producer.Publish (validate, count, push) on a fresh producer, client not connected", pub),
	}
}
