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
// allocate, lock or block. A popped element is cleared, so the ring keeps
// nothing alive.
//
// Push applies a Policy when the ring is full: DropOldest replaces the oldest
// element in one step and hands it back, Raise returns ErrFull, Block waits
// until a pop makes room or the context ends.
//
// A consumer that finds the ring empty can sleep on NotEmpty instead of
// polling (see NotEmpty for the loop); while nobody sleeps this costs the
// pushers next to nothing.
package buffer
