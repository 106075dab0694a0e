//go:build unix

package buffer

import (
	"context"
	"syscall"
	"testing"
	"time"
)

func cpuTime(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestSleepersDoNotSpin: a consumer asleep on NotEmpty and two pushers parked
// by Block cost no CPU while nothing happens.
func TestSleepersDoNotSpin(t *testing.T) {
	empty := New[int](4)
	fullRing := New[int](1)
	fullRing.TryPush(0)
	ctx, cancel := context.WithCancel(context.Background())
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		consume(ctx, empty, 1, func(int) {})
	}()
	pushed := []<-chan error{pushAsync(fullRing, ctx, 1), pushAsync(fullRing, ctx, 2)}
	waitFor(t, "2 parked pushers", func() bool { return fullRing.parked.Load() == 2 })
	time.Sleep(10 * time.Millisecond)

	const idle = 300 * time.Millisecond
	before := cpuTime(t)
	time.Sleep(idle)
	used := cpuTime(t) - before

	cancel()
	<-consumed
	for _, res := range pushed {
		<-res
	}
	if used > idle/3 {
		t.Fatalf("sleepers used %v of CPU in %v", used, idle)
	}
	t.Logf("CPU used by the process while idle for %v: %v", idle, used)
}
