package buffer_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/c3ecadf2/lavinmq-go/buffer"
)

func ExampleNew() {
	r := buffer.New[string](2) // exactly 2 slots, all allocated here
	fmt.Println(r.TryPush("a"), r.TryPush("b"), r.TryPush("c"))
	v, ok := r.TryPop()
	fmt.Println(v, ok, r.Len(), r.Cap())
	// Output:
	// true true false
	// a true 1 2
}

func ExampleRing_Push() {
	ctx := context.Background()
	r := buffer.New[string](2)
	r.TryPush("a")
	r.TryPush("b")

	// DropOldest: the oldest element makes room and is handed back.
	old, evicted, err := r.Push(ctx, "c", buffer.DropOldest)
	fmt.Println(old, evicted, err)

	// Raise: fail at once.
	_, _, err = r.Push(ctx, "d", buffer.Raise)
	fmt.Println(errors.Is(err, buffer.ErrFull))

	// Block: wait for room, bounded by the context.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, _, err = r.Push(cancelled, "d", buffer.Block)
	fmt.Println(err)

	// An invalid policy is an error, never a panic.
	_, _, err = r.Push(ctx, "d", buffer.Policy(0))
	fmt.Println(err)

	for v, ok := r.TryPop(); ok; v, ok = r.TryPop() {
		fmt.Print(v, " ")
	}
	fmt.Println()
	// Output:
	// a true <nil>
	// true
	// context canceled
	// buffer: invalid policy
	// b c
}

func ExampleRing_NotEmpty() {
	ctx, cancel := context.WithCancel(context.Background())
	r := buffer.New[int](8)
	done := make(chan struct{})
	go func() { // the consumer: sleeps while the ring is empty
		defer close(done)
		for {
			if v, ok := r.TryPop(); ok {
				fmt.Println("got", v)
				if v == 3 {
					cancel()
				}
				continue
			}
			ch := r.NotEmpty()
			if v, ok := r.TryPop(); ok { // re-check after arming
				fmt.Println("got", v)
				if v == 3 {
					cancel()
				}
				continue
			}
			select {
			case <-ch:
			case <-ctx.Done():
				return
			}
		}
	}()
	for i := 1; i <= 3; i++ {
		r.TryPush(i)
	}
	<-done
	// Output:
	// got 1
	// got 2
	// got 3
}
