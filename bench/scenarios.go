package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/buffer"
	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

// prefill publishes n messages of size bytes to q with confirms (not timed).
func prefill(conn *amqp.Connection, q string, n, size int) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		return err
	}
	b := body(size)
	pending := make([]*amqp.DeferredConfirmation, 0, window)
	for range n {
		if len(pending) == window {
			pending[0].Wait()
			pending = pending[1:]
		}
		dc, err := ch.PublishWithDeferredConfirm("", q, false, false, amqp.Publishing{Body: b})
		if err != nil {
			return err
		}
		pending = append(pending, dc)
	}
	for _, dc := range pending {
		dc.Wait()
	}
	return nil
}

// runConsume consumes N pre-published messages with prefetch 100 and a
// manual ack each: the SDK consumer, a raw Consume-and-Ack loop, or a peer's
// own consumer (peers.go).
func runConsume(ctx context.Context, j job) (result, error) {
	conn, _, q, err := rawSetup(j.URL, "consume")
	if err != nil {
		return result{}, err
	}
	defer cleanup(conn, q)
	if err := prefill(conn, q, j.N, j.Size); err != nil {
		return result{}, err
	}
	var n atomic.Int64
	start := time.Now()
	switch j.Impl {
	case "sdk":
		c, err := lavinmq.New(j.URL)
		if err != nil {
			return result{}, err
		}
		defer c.Close()
		k, err := consumer.New(c, q, consumer.WithPrefetch(100))
		if err != nil {
			return result{}, err
		}
		runCtx, stop := context.WithCancel(ctx)
		defer stop()
		start = time.Now()
		_ = k.Run(runCtx, func(context.Context, consumer.Delivery) consumer.Action {
			if n.Add(1) == int64(j.N) {
				stop()
			}
			return consumer.Ack
		})
	case implAMQPRecovery, implGoRabbitMQ:
		pr, err := newPeer(j.Impl, j.URL, q)
		if err != nil {
			return result{}, err
		}
		defer pr.close()
		start = time.Now()
		if err := pr.consume(ctx, j.N); err != nil {
			return result{}, fmt.Errorf("%s: %w", j.Impl, err)
		}
		n.Store(int64(j.N))
	default:
		ch, err := conn.Channel()
		if err != nil {
			return result{}, err
		}
		if err := ch.Qos(100, 0, false); err != nil {
			return result{}, err
		}
		start = time.Now()
		ds, err := ch.Consume(q, "", false, false, false, false, nil)
		if err != nil {
			return result{}, err
		}
		for d := range ds {
			if err := d.Ack(false); err != nil {
				return result{}, err
			}
			if n.Add(1) == int64(j.N) {
				break
			}
		}
		_ = ch.Close()
	}
	elapsed := time.Since(start)
	if int(n.Load()) != j.N {
		return result{}, fmt.Errorf("consumed %d of %d", n.Load(), j.N)
	}
	return result{Msgs: j.N, Seconds: elapsed.Seconds(), MsgPerSec: float64(j.N) / elapsed.Seconds()}, nil
}

// runBurst offers Rate messages within one second. The SDK absorbs them in
// its buffer under the job's policy; the raw loop publishes them with a
// confirm window, and its caller is held until the broker took them all.
func runBurst(ctx context.Context, j job) (result, error) {
	conn, _, q, err := rawSetup(j.URL, "burst")
	if err != nil {
		return result{}, err
	}
	defer cleanup(conn, q)
	if j.Impl != "sdk" {
		r, _, err := publishRaw(job{N: j.Rate, Size: j.Size, Mode: "confirm", Impl: "raw", Goroutines: 1}, conn, q)
		r.HeldMs = r.Seconds * 1000
		r.Accepted = int64(j.Rate)
		return r, err
	}
	policy := map[string]buffer.Policy{"drop-oldest": buffer.DropOldest, "raise": buffer.Raise, "block": buffer.Block}[j.Policy]
	c, err := lavinmq.New(j.URL)
	if err != nil {
		return result{}, err
	}
	defer c.Close()
	if err := c.WaitConnected(ctx); err != nil {
		return result{}, err
	}
	p, err := producer.New(c, q, producer.WithPolicy(policy))
	if err != nil {
		return result{}, err
	}
	var rejected int64
	var held, maxCall time.Duration
	perTick := max(1, j.Rate/1000)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	for sent := 0; sent < j.Rate; {
		<-tick.C
		for i := 0; i < perTick && sent < j.Rate; i++ {
			t := time.Now()
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := p.Publish(pctx, producer.Message{Body: body(j.Size)})
			cancel()
			d := time.Since(t)
			held += d
			maxCall = max(maxCall, d)
			if errors.Is(err, buffer.ErrFull) {
				rejected++
			} else if err != nil {
				return result{}, err
			}
			sent++
		}
	}
	offered := time.Since(start)
	if err := p.Flush(ctx); err != nil {
		return result{}, err
	}
	drained := time.Since(start)
	_ = p.Close(ctx)
	s := p.Stats()
	return result{
		Msgs: int(s.Accepted), Seconds: drained.Seconds(), MsgPerSec: float64(j.Rate) / offered.Seconds(),
		Accepted: int64(s.Accepted), Rejected: rejected, Dropped: int64(s.Dropped), Confirmed: int64(s.Confirmed),
		MaxCallMs: float64(maxCall) / 1e6, HeldMs: float64(held) / 1e6,
		Note: fmt.Sprintf("offered in %.2fs, drained %.2fs after the start", offered.Seconds(), drained.Seconds()),
	}, nil
}

// broker runs the broker's script with args (the bench runs from the
// repository root): scripts/broker.sh, or scripts/lavinmq.sh when BROKER is
// lavinmq, where "ctl close_all_connections" becomes close-conns.
func broker(args ...string) error {
	script := "scripts/broker.sh"
	if os.Getenv("BROKER") == "lavinmq" {
		script = "scripts/lavinmq.sh"
		if len(args) > 1 && args[0] == "ctl" && args[1] == "close_all_connections" {
			args = []string{"close-conns"}
		}
	}
	out, err := exec.Command(script, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %v: %w\n%s", script, args, err, out)
	}
	return nil
}
