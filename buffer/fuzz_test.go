package buffer

import (
	"context"
	"errors"
	"testing"
)

// FuzzRingMatchesSliceModel runs a single-goroutine sequence of operations on
// a ring of capacity 1..9 and on a plain slice, and requires the same results
// after every step. Each op byte selects:
//
//	0 TryPush            1 TryPop
//	2 Push DropOldest    3 Push Raise
//	4 Push Block with an already-cancelled ctx (fails with Canceled when full)
//	5 Push with an invalid policy (ErrInvalidPolicy, no change)
//	6 arm NotEmpty: the next successful push must leave a token in the channel
func FuzzRingMatchesSliceModel(f *testing.F) {
	f.Add(uint8(0), []byte{0, 0, 1, 1, 1})
	f.Add(uint8(1), []byte{0, 0, 2, 2, 3, 4, 1, 4, 1, 1})
	f.Add(uint8(2), []byte{6, 0, 6, 2, 2, 2, 1, 1, 1, 6, 3, 3, 3, 5, 1})
	f.Add(uint8(4), []byte{0, 0, 0, 0, 0, 0, 1, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1})
	f.Add(uint8(8), []byte{2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 4, 4, 1, 4, 3, 6, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0})
	f.Add(uint8(6), []byte("\x00\x01\x02\x03\x04\x05\x06\x00\x00\x00\x00\x00\x00\x00\x00\x02\x02\x01\x01\x01\x01\x01\x01\x01\x01\x01"))
	f.Fuzz(func(t *testing.T, capByte uint8, ops []byte) {
		capacity := int(capByte%9) + 1
		r := New[int](capacity)
		var model []int
		cancelled, cancel := context.WithCancel(context.Background())
		cancel()
		ctx := context.Background()
		next := 0      // values pushed are distinct and increasing
		armed := false // NotEmpty was called and no push succeeded since
		var notEmpty <-chan struct{}
		pushed := func(step int) {
			if armed {
				select {
				case <-notEmpty:
				default:
					t.Fatalf("step %d: a push after NotEmpty left no token", step)
				}
				armed = false
			}
		}
		for step, op := range ops {
			isFull := len(model) == capacity
			switch op % 7 {
			case 0:
				ok := r.TryPush(next)
				if ok != !isFull {
					t.Fatalf("step %d: TryPush=%v with %d/%d", step, ok, len(model), capacity)
				}
				if ok {
					model = append(model, next)
					pushed(step)
				}
				next++
			case 1:
				v, ok := r.TryPop()
				if ok != (len(model) > 0) {
					t.Fatalf("step %d: TryPop ok=%v with %d elements", step, ok, len(model))
				}
				if ok {
					if v != model[0] {
						t.Fatalf("step %d: TryPop=%d want %d", step, v, model[0])
					}
					model = model[1:]
				} else if v != 0 {
					t.Fatalf("step %d: failed TryPop returned %d, want the zero value", step, v)
				}
			case 2:
				ev, did, err := r.Push(ctx, next, DropOldest)
				if err != nil || did != isFull {
					t.Fatalf("step %d: DropOldest did=%v err=%v with %d/%d", step, did, err, len(model), capacity)
				}
				if did {
					if ev != model[0] {
						t.Fatalf("step %d: evicted %d want %d", step, ev, model[0])
					}
					model = model[1:]
				}
				model = append(model, next)
				pushed(step)
				next++
			case 3:
				_, did, err := r.Push(ctx, next, Raise)
				if did || (err != nil) != isFull || (err != nil && !errors.Is(err, ErrFull)) {
					t.Fatalf("step %d: Raise did=%v err=%v with %d/%d", step, did, err, len(model), capacity)
				}
				if err == nil {
					model = append(model, next)
					pushed(step)
				}
				next++
			case 4:
				_, did, err := r.Push(cancelled, next, Block)
				if did || (err != nil) != isFull || (err != nil && !errors.Is(err, context.Canceled)) {
					t.Fatalf("step %d: Block did=%v err=%v with %d/%d", step, did, err, len(model), capacity)
				}
				if err == nil {
					model = append(model, next)
					pushed(step)
				}
				next++
			case 5:
				p := Policy(op) // 5, 12, 19, ...: never a valid policy
				if op/7%2 == 0 {
					p = 0 // the zero Policy is invalid too
				}
				if _, did, err := r.Push(ctx, next, p); did || !errors.Is(err, ErrInvalidPolicy) {
					t.Fatalf("step %d: policy %d did=%v err=%v", step, p, did, err)
				}
			case 6:
				notEmpty = r.NotEmpty()
				armed = true
			}
			if r.Len() != len(model) {
				t.Fatalf("step %d: Len()=%d want %d", step, r.Len(), len(model))
			}
			if r.Cap() != capacity {
				t.Fatalf("step %d: Cap()=%d want %d", step, r.Cap(), capacity)
			}
		}
		for i, want := range model {
			if v, ok := r.TryPop(); !ok || v != want {
				t.Fatalf("drain %d: TryPop=%d,%v want %d", i, v, ok, want)
			}
		}
		if _, ok := r.TryPop(); ok {
			t.Fatal("ring longer than the model")
		}
	})
}
