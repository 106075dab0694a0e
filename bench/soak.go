package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

// soakLedger follows every sequence number of a soak run from Publish to
// the consumer. The publisher loop, OnDrop and the consumer's handler write
// it concurrently, so everything is atomic.
type soakLedger struct {
	sizes    []int32 // body size of each sequence number, drawn from the seed
	accepted []atomic.Bool
	dropped  []atomic.Uint32 // DropReason of the OnDrop call, 0 if none
	recv     []atomic.Uint32 // deliveries

	deliveries atomic.Uint64
	corrupt    atomic.Int64
	badDrops   atomic.Int64 // OnDrop of a body that is not ours, or a second OnDrop of one message
}

// newSoakLedger draws the size of each of n messages from spec's seed.
func newSoakLedger(spec soakSpec, n int) *soakLedger {
	r := rand.New(rand.NewPCG(spec.Seed, spec.Seed^0x9e3779b97f4a7c15))
	l := &soakLedger{sizes: make([]int32, n), accepted: make([]atomic.Bool, n), dropped: make([]atomic.Uint32, n), recv: make([]atomic.Uint32, n)}
	for i := range l.sizes {
		l.sizes[i] = int32(spec.MinSize + r.IntN(spec.MaxSize-spec.MinSize+1))
		// Write every slot now: a large allocation comes from fresh pages that
		// become resident only when first written, so a ledger filled as the
		// run goes would add its own ~9 bytes a message to the RSS slope.
		l.accepted[i].Store(false)
		l.dropped[i].Store(0)
		l.recv[i].Store(0)
	}
	return l
}

// soakBody is message seq: its sequence number, then a pattern that depends
// on seq and the offset, every byte written (a fresh allocation, as an
// application's would be).
func soakBody(seq uint64, size int) []byte {
	b := make([]byte, max(size, 8))
	binary.BigEndian.PutUint64(b, seq)
	for i := 8; i < len(b); i++ {
		b[i] = byte(i) ^ byte(seq)
	}
	return b
}

// seqOf returns the sequence number of a soak body and whether the body is
// exactly the one soakBody made for it.
func (l *soakLedger) seqOf(b []byte) (uint64, bool) {
	if len(b) < 8 {
		return 0, false
	}
	seq := binary.BigEndian.Uint64(b)
	if seq >= uint64(len(l.sizes)) || len(b) != int(l.sizes[seq]) {
		return seq, false
	}
	for i := 8; i < len(b); i++ {
		if b[i] != byte(i)^byte(seq) {
			return seq, false
		}
	}
	return seq, true
}

func (l *soakLedger) onDrop(m producer.Message, _ string, r producer.DropReason) {
	seq, ok := l.seqOf(m.Body)
	if !ok || !l.dropped[seq].CompareAndSwap(0, uint32(r)) {
		l.badDrops.Add(1)
	}
}

func (l *soakLedger) handle(_ context.Context, d consumer.Delivery) consumer.Action {
	l.deliveries.Add(1)
	seq, ok := l.seqOf(d.Body)
	if !ok {
		l.corrupt.Add(1)
		return consumer.Ack
	}
	l.recv[seq].Add(1)
	return consumer.Ack
}

// outstanding counts the accepted messages neither received nor reported dropped.
func (l *soakLedger) outstanding() int {
	n := 0
	for i := range l.sizes {
		if l.accepted[i].Load() && l.recv[i].Load() == 0 && l.dropped[i].Load() == 0 {
			n++
		}
	}
	return n
}

// count fills r's message accounting from the ledger.
func (l *soakLedger) count(r *soakResult) {
	for i := range l.sizes {
		acc, got, drop := l.accepted[i].Load(), l.recv[i].Load(), l.dropped[i].Load()
		if acc {
			r.AcceptedBytes += int64(l.sizes[i])
		}
		if got > 0 {
			r.Received++
			r.Duplicates += int64(got - 1)
		}
		switch {
		case got > 0 && !acc:
			r.Unexpected++
		case acc && got == 0 && drop == 0:
			r.Lost++
		case got > 0 && drop != 0:
			r.DroppedAndReceived++
		}
	}
	r.Corrupt = l.corrupt.Load() + l.badDrops.Load()
}

// runSoakJob is the soak worker: one client with an SDK producer and an SDK
// consumer on the same queue (a service that publishes and consumes; the
// RSS is the SDK's whole footprint), publishing at spec.Rate for
// spec.Duration while the broker restarts every spec.Restart, sampling the
// process every second; then it flushes, reads the queue dry and counts.
func runSoakJob(ctx context.Context, url string, spec soakSpec) (soakResult, error) {
	res := soakResult{Spec: spec, GoroutinesBefore: runtime.NumGoroutine()}
	conn, _, q, err := rawSetup(url, "soak")
	if err != nil {
		return res, err
	}
	conn.Close() // the restarts would kill it; the queue is durable
	defer cleanupQueue(url, q)

	total := spec.Rate * int(spec.Duration.Seconds()+1)
	led := newSoakLedger(spec, total)
	c, err := lavinmq.New(url, lavinmq.WithConnectionName("bench-soak"))
	if err != nil {
		return res, err
	}
	defer c.Close()
	p, err := producer.New(c, q, producer.OnDrop(led.onDrop))
	if err != nil {
		return res, err
	}
	k, err := consumer.New(c, q, consumer.WithPrefetch(200))
	if err != nil {
		return res, err
	}
	runCtx, stopConsumer := context.WithCancel(ctx)
	defer stopConsumer()
	consumed := make(chan error, 1)
	go func() { consumed <- k.Run(runCtx, led.handle) }()
	if err := c.WaitConnected(ctx); err != nil {
		return res, err
	}

	start := time.Now()
	since := func() float64 { return time.Since(start).Seconds() }

	// The restarter: a broker restart at every multiple of spec.Restart before
	// the end. It lives until publishing ends, so that the goroutine count
	// of the samples is the SDK's alone when it changes.
	var restarts []soakRestart
	var restartErr error
	restarted, published := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(restarted)
		defer func() {
			select {
			case <-ctx.Done():
			case <-published:
			}
		}()
		for at := spec.Restart; spec.Restart > 0 && at < spec.Duration; at += spec.Restart {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Until(start.Add(at))):
			}
			rs := soakRestart{At: since()}
			if err := broker("restart"); err != nil {
				restartErr = err
				return
			}
			rs.Up = since()
			restarts = append(restarts, rs)
			fmt.Fprintf(os.Stderr, "soak: broker restarted at %.0fs, answering at %.0fs\n", rs.At, rs.Up)
		}
	}()

	// The sampler: one sample a second until stopSampling, plus one at the end.
	samples := make([]soakSample, 0, int(spec.Duration.Seconds())+600) // grown up front: not part of the heap slope
	var sampleMu sync.Mutex
	sample := func() {
		st := p.Stats()
		heap, live := heapMiB()
		s := soakSample{T: since(), RSSMiB: vmRSSMiB(), HeapMiB: heap, LiveHeapMiB: live, Goroutines: runtime.NumGoroutine(),
			Pending: st.Pending, Confirmed: st.Confirmed, Received: led.deliveries.Load(), Connected: c.Connected()}
		sampleMu.Lock()
		samples = append(samples, s)
		n := len(samples)
		sampleMu.Unlock()
		if n%10 == 0 {
			fmt.Fprintf(os.Stderr, "soak: %4.0fs rss %6.1f MiB heap %6.1f MiB live %6.1f MiB goroutines %3d pending %6d confirmed %8d received %8d\n",
				s.T, s.RSSMiB, s.HeapMiB, s.LiveHeapMiB, s.Goroutines, s.Pending, s.Confirmed, s.Received)
		}
	}
	stopSampling, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
				sample()
			}
		}
	}()

	// The publisher loop, paced every 10 ms.
	pace := time.NewTicker(10 * time.Millisecond)
	sent := 0
	for time.Since(start) < spec.Duration && ctx.Err() == nil {
		<-pace.C
		want := min(total, int(time.Since(start).Seconds()*float64(spec.Rate)))
		for ; sent < want; sent++ {
			if err := p.Publish(ctx, producer.Message{Body: soakBody(uint64(sent), int(led.sizes[sent]))}); err != nil {
				res.Rejected++
				continue
			}
			led.accepted[sent].Store(true)
			res.Accepted++
		}
	}
	pace.Stop()
	close(published)
	<-restarted
	if restartErr != nil {
		close(stopSampling)
		<-sampled
		return res, restartErr
	}

	// Settle: every accepted message confirmed or dropped, then read the queue dry.
	fctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	ferr := p.Flush(fctx)
	cancel()
	left, derr := drain(ctx, url, q, led, 3*time.Minute)
	close(stopSampling)
	<-sampled
	sample()

	stopConsumer()
	if err := <-consumed; err != nil && ctx.Err() == nil && err != context.Canceled {
		res.Note += fmt.Sprintf("consumer: %v; ", err)
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	if err := p.Close(cctx); err != nil {
		res.Note += fmt.Sprintf("producer close: %v; ", err)
	}
	cancel()
	c.Close()
	res.GoroutinesAfter = settledGoroutines(res.GoroutinesBefore)

	st := p.Stats()
	res.Confirmed, res.Dropped, res.Resent = int64(st.Confirmed), int64(st.Dropped), int64(st.Resent)
	for r, n := range st.DroppedBy {
		if n > 0 {
			if res.DroppedBy == nil {
				res.DroppedBy = map[string]int64{}
			}
			res.DroppedBy[r.String()] = int64(n)
		}
	}
	led.count(&res)
	res.QueueLeft = left
	res.Samples, res.Restarts = samples, restarts
	if ferr != nil {
		res.Note += fmt.Sprintf("flush: %v; ", ferr)
	}
	if derr != nil {
		res.Note += fmt.Sprintf("drain: %v; ", derr)
	}
	res.Note = strings.TrimSuffix(res.Note, "; ")
	return res, nil
}

// drain waits until every accepted message was received or reported dropped
// and the queue is empty (twice in a row, a second apart), or timeout. It
// returns the queue's depth when it stopped.
func drain(ctx context.Context, url, q string, led *soakLedger, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	depth, empties := -1, 0
	for time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(time.Second)
		if led.outstanding() > 0 {
			continue
		}
		d, err := queueDepth(url, q)
		if err != nil {
			continue // the broker may still be coming back
		}
		depth = d
		if d > 0 {
			empties = 0
			continue
		}
		if empties++; empties == 2 {
			return 0, nil
		}
	}
	return depth, fmt.Errorf("after %v: %d accepted messages neither received nor dropped, queue depth %d", timeout, led.outstanding(), depth)
}

// queueDepth is q's ready message count, through a connection of its own.
func queueDepth(url, q string) (int, error) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return 0, err
	}
	qi, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
	if err != nil {
		return 0, err
	}
	return qi.Messages, nil
}

// settledGoroutines waits up to 5 s for the goroutine count to fall to want
// (goroutines that are ending need a moment) and returns the last count.
func settledGoroutines(want int) int {
	n := runtime.NumGoroutine()
	for deadline := time.Now().Add(5 * time.Second); n > want && time.Now().Before(deadline); n = runtime.NumGoroutine() {
		time.Sleep(50 * time.Millisecond)
	}
	return n
}

// vmRSSMiB reads the process's resident set size from /proc/self/status.
func vmRSSMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

// heapMiB returns the memory of the Go heap's objects, live or not yet
// swept, and the live heap as marked by the last GC (runtime/metrics: no
// stop-the-world, unlike runtime.ReadMemStats).
func heapMiB() (objects, live float64) {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	v := make([]float64, len(s))
	for i := range s {
		if s[i].Value.Kind() == metrics.KindUint64 {
			v[i] = float64(s[i].Value.Uint64()) / (1 << 20)
		}
	}
	return v[0], v[1]
}
