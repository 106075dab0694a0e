// Package buffer is the producer's outage buffer: a preallocated, lock-free,
// bounded multi-producer multi-consumer ring with overflow policies.
//
//	r := buffer.New[string](2) // exactly 2 slots, all allocated here
//	r.TryPush("a")             // true
//	r.TryPush("b")             // true
//	r.TryPush("c")             // false: full
//	old, evicted, _ := r.Push(ctx, "c", buffer.DropOldest)
//	fmt.Println(old, evicted)  // a true
//	v, ok := r.TryPop()
//	fmt.Println(v, ok, r.Len()) // b true 1
//
// (ExampleNew and ExampleRing_Push run this.)
//
// TryPush and TryPop are safe from any number of goroutines, FIFO, and never
// allocate or lock: each slot carries a sequence stamp (Dmitry Vyukov's
// bounded MPMC queue) and head and tail are advanced by compare-and-swap on
// separate cache lines. A popped slot is cleared so the ring keeps nothing
// alive.
//
// Push applies a Policy when the ring is full: DropOldest replaces the oldest
// element in one step and hands it back, Raise returns ErrFull, Block parks
// until a pop makes room or the context ends.
//
// Consumers that find the ring empty sleep on NotEmpty; the push side pays
// only an atomic load of a flag for this while nobody sleeps, and the pop side
// likewise for parked Block pushers (see NotEmpty for the consumer loop).
package buffer
