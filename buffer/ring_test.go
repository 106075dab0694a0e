package buffer

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"
	"weak"
)

func TestNewPanicsOnCapacityBelowOne(t *testing.T) {
	for _, c := range []int{0, -1, -1 << 40} {
		func() {
			defer func() {
				got := recover()
				if got != "buffer: capacity must be at least 1" {
					t.Errorf("New(%d) panicked with %v, want the capacity message", c, got)
				}
			}()
			New[int](c)
		}()
	}
}

func TestHoldsExactlyCapacity(t *testing.T) {
	// Powers of two, their neighbours and odd sizes: the lap encoding rounds
	// only the position space, never the array.
	for _, c := range []int{1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 100, 1000, 1023, 1024, 1025} {
		r := New[int](c)
		if r.Cap() != c || len(r.slots) != c {
			t.Fatalf("cap %d: Cap()=%d, slots=%d", c, r.Cap(), len(r.slots))
		}
		for lap := range 3 { // several laps, so wrap-around is covered
			for i := range c {
				if r.Len() != i {
					t.Fatalf("cap %d lap %d: Len()=%d, want %d", c, lap, r.Len(), i)
				}
				if !r.TryPush(lap*c + i) {
					t.Fatalf("cap %d lap %d: TryPush #%d failed", c, lap, i)
				}
			}
			if r.TryPush(-1) {
				t.Fatalf("cap %d: TryPush succeeded on a full ring", c)
			}
			if r.Len() != c {
				t.Fatalf("cap %d: Len()=%d on a full ring", c, r.Len())
			}
			if _, _, err := r.Push(context.Background(), -1, Raise); !errors.Is(err, ErrFull) {
				t.Fatalf("cap %d: Push(Raise) on full = %v, want ErrFull", c, err)
			}
			for i := range c {
				v, ok := r.TryPop()
				if !ok || v != lap*c+i {
					t.Fatalf("cap %d lap %d: TryPop()=%d,%v want %d", c, lap, v, ok, lap*c+i)
				}
			}
			if v, ok := r.TryPop(); ok {
				t.Fatalf("cap %d: TryPop on empty returned %d", c, v)
			}
		}
	}
}

func TestFIFOInterleaved(t *testing.T) {
	r := New[int](5)
	next, want := 0, 0
	for round := range 1000 {
		for range round%7 + 1 {
			if r.TryPush(next) {
				next++
			}
		}
		for range round%5 + 1 {
			if v, ok := r.TryPop(); ok {
				if v != want {
					t.Fatalf("popped %d, want %d", v, want)
				}
				want++
			}
		}
		if r.Len() != next-want {
			t.Fatalf("Len()=%d, want %d", r.Len(), next-want)
		}
	}
}

func TestPoppedSlotsAreCleared(t *testing.T) {
	type blob struct{ b [64]byte }
	r := New[*blob](4)
	for range 3 {
		r.TryPush(new(blob))
	}
	r.TryPop()
	r.TryPop()
	occupied := 0
	for i := range r.slots {
		if r.slots[i].val != nil {
			occupied++
		}
	}
	if occupied != 1 {
		t.Fatalf("%d slots still hold a pointer, want 1", occupied)
	}

	// And the garbage collector agrees: a popped (or evicted) value is
	// collectable while the ring is still alive.
	popped := new(blob)
	wp := weak.Make(popped)
	r.TryPush(popped)
	for range r.Cap() {
		r.TryPop()
	}
	evictee := new(blob)
	we := weak.Make(evictee)
	for range r.Cap() {
		r.TryPush(evictee)
	}
	if r.Len() != r.Cap() {
		t.Fatalf("Len()=%d, want full", r.Len())
	}
	for range r.Cap() {
		if _, ok, _ := r.Push(context.Background(), new(blob), DropOldest); !ok {
			t.Fatal("DropOldest on a full ring did not evict")
		}
	}
	popped, evictee = nil, nil
	for i := 0; i < 10 && (wp.Value() != nil || we.Value() != nil); i++ {
		runtime.GC()
	}
	if wp.Value() != nil || we.Value() != nil {
		t.Fatal("the ring keeps popped or evicted values alive")
	}
	runtime.KeepAlive(r)
}

func TestPolicyStringAndValid(t *testing.T) {
	cases := []struct {
		p     Policy
		s     string
		valid bool
	}{
		{DropOldest, "drop-oldest", true},
		{Raise, "raise", true},
		{Block, "block", true},
		{0, "Policy(0)", false},
		{Policy(42), "Policy(42)", false},
	}
	for _, c := range cases {
		if c.p.String() != c.s || c.p.Valid() != c.valid {
			t.Errorf("%d: String()=%q Valid()=%v, want %q %v", uint8(c.p), c.p.String(), c.p.Valid(), c.s, c.valid)
		}
	}
}

func TestInvalidPolicyIsAnError(t *testing.T) {
	r := New[int](1)
	for _, full := range []bool{false, true} {
		if full {
			r.TryPush(7)
		}
		for _, p := range []Policy{0, Block + 1, 255} {
			ev, did, err := r.Push(context.Background(), 1, p)
			if !errors.Is(err, ErrInvalidPolicy) || did || ev != 0 {
				t.Fatalf("Push(policy %d, full=%v) = %d,%v,%v; want ErrInvalidPolicy", p, full, ev, did, err)
			}
		}
		if want := map[bool]int{false: 0, true: 1}[full]; r.Len() != want {
			t.Fatalf("an invalid policy changed the ring: Len()=%d", r.Len())
		}
	}
}

func TestDropOldestEvictsInOrder(t *testing.T) {
	r := New[int](3)
	ctx := context.Background()
	for i := range 3 {
		if _, did, err := r.Push(ctx, i, DropOldest); did || err != nil {
			t.Fatalf("push %d on a non-full ring: did=%v err=%v", i, did, err)
		}
	}
	for i := 3; i < 10; i++ {
		ev, did, err := r.Push(ctx, i, DropOldest)
		if err != nil || !did || ev != i-3 {
			t.Fatalf("push %d: evicted %d,%v,%v; want %d", i, ev, did, err, i-3)
		}
		if r.Len() != 3 {
			t.Fatalf("Len()=%d after an eviction", r.Len())
		}
	}
	for want := 7; want < 10; want++ {
		if v, ok := r.TryPop(); !ok || v != want {
			t.Fatalf("TryPop()=%d,%v want %d", v, ok, want)
		}
	}
}

func TestRaiseAndBlockOnRoom(t *testing.T) {
	r := New[int](2)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	// With room, Block pushes whatever the context: ctx only bounds a wait.
	if _, _, err := r.Push(cancelled, 1, Block); err != nil {
		t.Fatalf("Block with room: %v", err)
	}
	var nilCtx context.Context // documented: treated as context.Background()
	if _, _, err := r.Push(nilCtx, 2, Block); err != nil {
		t.Fatalf("Block with room and a nil ctx: %v", err)
	}
	start := time.Now()
	if _, _, err := r.Push(cancelled, 3, Block); !errors.Is(err, context.Canceled) {
		t.Fatalf("Block when full with a cancelled ctx: %v", err)
	}
	if time.Since(start) > time.Second {
		t.Fatal("Block with a cancelled ctx waited")
	}
	if r.Len() != 2 {
		t.Fatalf("Len()=%d", r.Len())
	}
}
