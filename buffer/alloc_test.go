package buffer

import (
	"context"
	"testing"
)

type allocRecord struct {
	ID      uint64
	Key     string
	Body    []byte
	Headers map[string]any
}

// TestZeroAllocs: TryPush, TryPop and the DropOldest path allocate nothing,
// for a pointer element type and for a struct element type.
func TestZeroAllocs(t *testing.T) {
	t.Run("pointer", func(t *testing.T) { testZeroAllocs(t, &allocRecord{ID: 1}) })
	t.Run("struct", func(t *testing.T) { testZeroAllocs(t, allocRecord{ID: 1, Key: "k", Body: []byte("b")}) })
}

func testZeroAllocs[T any](t *testing.T, v T) {
	r := New[T](8)
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() {
		if !r.TryPush(v) {
			t.Fatal("TryPush failed")
		}
		if _, ok := r.TryPop(); !ok {
			t.Fatal("TryPop failed")
		}
	}); n != 0 {
		t.Errorf("TryPush+TryPop: %v allocs/op", n)
	}
	for range r.Cap() {
		r.TryPush(v)
	}
	if n := testing.AllocsPerRun(1000, func() {
		if _, did, err := r.Push(ctx, v, DropOldest); !did || err != nil {
			t.Fatal("DropOldest on a full ring did not evict")
		}
	}); n != 0 {
		t.Errorf("Push(DropOldest) on a full ring: %v allocs/op", n)
	}
	if n := testing.AllocsPerRun(1000, func() {
		if _, _, err := r.Push(ctx, v, Raise); err != ErrFull {
			t.Fatal("Raise on a full ring did not fail")
		}
		r.TryPop()
		if _, did, err := r.Push(ctx, v, DropOldest); did || err != nil {
			t.Fatal("DropOldest with room evicted")
		}
	}); n != 0 {
		t.Errorf("Push(Raise)/Push(DropOldest) with room: %v allocs/op", n)
	}
}
