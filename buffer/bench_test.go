package buffer

// Benchmarks: each scenario runs the ring, a buffered chan of the same
// capacity and go-diodes in one run, named Scenario/impl so results line up
// for benchstat (`benchstat -col .name` is not needed: compare the /ring,
// /chan and /diode rows of one scenario).
//
// Per op is one element, except Single10k where it is the whole batch of
// 10_000 pushes then 10_000 pops.
//
// go-diodes (code.cloudfoundry.org/go-diodes) are not a like-for-like queue:
// every Set allocates a bucket (1 alloc/op), and a full diode overwrites the
// oldest data silently instead of refusing or handing it back, so in the
// producer/consumer scenarios a fast producer simply loses elements. The
// diode rows report that share as lost/op; their ns/op counts every Set,
// delivered or not. The ManyToOne diode also logs on write collisions; the
// log output is discarded while a diode benchmark runs.

import (
	"context"
	"io"
	"log"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	diodes "code.cloudfoundry.org/go-diodes"
)

const (
	batch    = 10_000 // Single10k
	benchCap = 1024   // every other scenario
)

// share splits n operations over k workers.
func share(n, k, i int) int {
	s := n / k
	if i < n%k {
		s++
	}
	return s
}

func quietLog(b *testing.B) {
	w := log.Writer()
	log.SetOutput(io.Discard)
	b.Cleanup(func() { log.SetOutput(w) })
}

var sink int // keeps popped values observable

// BenchmarkSingle10k: one goroutine pushes 10_000 elements, then pops them.
func BenchmarkSingle10k(b *testing.B) {
	b.Run("ring", func(b *testing.B) {
		b.ReportAllocs()
		r := New[int](batch)
		for b.Loop() {
			for i := range batch {
				if !r.TryPush(i) {
					b.Fatal("full")
				}
			}
			for range batch {
				v, _ := r.TryPop()
				sink += v
			}
		}
	})
	b.Run("chan", func(b *testing.B) {
		b.ReportAllocs()
		ch := make(chan int, batch)
		for b.Loop() {
			for i := range batch {
				ch <- i
			}
			for range batch {
				sink += <-ch
			}
		}
	})
	b.Run("diode", func(b *testing.B) {
		b.ReportAllocs()
		d := diodes.NewOneToOne(batch, nil)
		x := new(int)
		for b.Loop() {
			for range batch {
				d.Set(diodes.GenericDataType(x))
			}
			for range batch {
				if _, ok := d.TryNext(); !ok {
					b.Fatal("diode lost data")
				}
			}
		}
	})
}

func BenchmarkSPSC(b *testing.B)   { benchProducers(b, 1) }
func BenchmarkMPSC4(b *testing.B)  { benchProducers(b, 4) }
func BenchmarkMPSC16(b *testing.B) { benchProducers(b, 16) }

// benchProducers: `producers` goroutines push b.N elements in total, one
// consumer (the benchmark goroutine) takes them. Ring: TryPush per element,
// runtime.Gosched when full; TryPop in a loop, runtime.Gosched when empty.
// Chan: blocking send and receive.
func benchProducers(b *testing.B, producers int) {
	b.Run("ring", func(b *testing.B) {
		b.ReportAllocs()
		r := New[int](benchCap)
		var wg sync.WaitGroup
		b.ResetTimer()
		for p := range producers {
			n := share(b.N, producers, p)
			wg.Go(func() {
				for i := range n {
					for !r.TryPush(i) {
						runtime.Gosched()
					}
				}
			})
		}
		for got := 0; got < b.N; {
			if v, ok := r.TryPop(); ok {
				sink += v
				got++
			} else {
				runtime.Gosched()
			}
		}
		wg.Wait()
	})
	b.Run("ring-park", func(b *testing.B) {
		b.ReportAllocs()
		r := New[int](benchCap)
		ctx := context.Background()
		var wg sync.WaitGroup
		b.ResetTimer()
		for p := range producers {
			n := share(b.N, producers, p)
			wg.Go(func() {
				for i := range n {
					if !r.TryPush(i) {
						_, _, _ = r.Push(ctx, i, Block)
					}
				}
			})
		}
		for got := 0; got < b.N; {
			if v, ok := r.TryPop(); ok {
				sink += v
				got++
				continue
			}
			wake := r.NotEmpty()
			if v, ok := r.TryPop(); ok {
				sink += v
				got++
				continue
			}
			<-wake
		}
		wg.Wait()
	})
	b.Run("chan", func(b *testing.B) {
		b.ReportAllocs()
		ch := make(chan int, benchCap)
		var wg sync.WaitGroup
		b.ResetTimer()
		for p := range producers {
			n := share(b.N, producers, p)
			wg.Go(func() {
				for i := range n {
					ch <- i
				}
			})
		}
		for range b.N {
			sink += <-ch
		}
		wg.Wait()
	})
	b.Run("diode", func(b *testing.B) {
		quietLog(b)
		b.ReportAllocs()
		var d interface {
			Set(diodes.GenericDataType)
			TryNext() (diodes.GenericDataType, bool)
		}
		if producers == 1 {
			d = diodes.NewOneToOne(benchCap, nil)
		} else {
			d = diodes.NewManyToOne(benchCap, nil)
		}
		x := new(int)
		var wg sync.WaitGroup
		var finished atomic.Int32
		b.ResetTimer()
		for p := range producers {
			n := share(b.N, producers, p)
			wg.Go(func() {
				defer finished.Add(1)
				for range n {
					d.Set(diodes.GenericDataType(x))
				}
			})
		}
		got := 0
		for {
			if v, ok := d.TryNext(); ok {
				sink += *(*int)(unsafe.Pointer(v))
				got++
			} else if finished.Load() == int32(producers) {
				if _, ok := d.TryNext(); !ok { // drain what the last Set left
					break
				}
				got++
			} else {
				runtime.Gosched()
			}
		}
		wg.Wait()
		b.ReportMetric(float64(b.N-got)/float64(b.N), "lost/op")
	})
}

func BenchmarkDropOldest1(b *testing.B) { benchDropOldest(b, 1) }
func BenchmarkDropOldest4(b *testing.B) { benchDropOldest(b, 4) }

// chanDropOldest is the select-default drop-oldest idiom for a chan: on full,
// receive one, then send.
func chanDropOldest(ch chan int, v int) (evicted int, did bool) {
	for {
		select {
		case ch <- v:
			return evicted, did
		default:
		}
		select {
		case evicted = <-ch:
			did = true
		default:
		}
	}
}

// benchDropOldest: `producers` goroutines push b.N elements in total into a
// full ring with DropOldest, with no consumer: every push evicts. Each
// producer sums what it gets back locally and adds it to sink once at the
// end, so that the producers share no cache line except the queue's own.
func benchDropOldest(b *testing.B, producers int) {
	var mu sync.Mutex
	run := func(b *testing.B, push func(i int) int) {
		var wg sync.WaitGroup
		b.ResetTimer()
		for p := range producers {
			n := share(b.N, producers, p)
			wg.Go(func() {
				sum := 0
				for i := range n {
					sum += push(i)
				}
				mu.Lock()
				sink += sum
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	b.Run("ring", func(b *testing.B) {
		b.ReportAllocs()
		r := New[int](benchCap)
		for r.TryPush(-1) {
		}
		ctx := context.Background()
		run(b, func(i int) int {
			ev, _, _ := r.Push(ctx, i, DropOldest)
			return ev
		})
	})
	b.Run("chan", func(b *testing.B) {
		b.ReportAllocs()
		ch := make(chan int, benchCap)
		for range benchCap {
			ch <- -1
		}
		run(b, func(i int) int {
			ev, _ := chanDropOldest(ch, i)
			return ev
		})
	})
	b.Run("diode", func(b *testing.B) {
		quietLog(b)
		b.ReportAllocs()
		var d interface{ Set(diodes.GenericDataType) }
		if producers == 1 {
			d = diodes.NewOneToOne(benchCap, nil)
		} else {
			d = diodes.NewManyToOne(benchCap, nil)
		}
		x := new(int)
		for range benchCap {
			d.Set(diodes.GenericDataType(x))
		}
		run(b, func(int) int { d.Set(diodes.GenericDataType(x)); return 0 }) // overwrites silently
	})
}
