package consumer_test

import (
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
)

// TestIdleConsumerWithLargePrefetchIsSmall: an idle consumer with prefetch
// 65 535 does not preallocate a delivery queue of that size (it used to cost
// about 19 MiB): the handler queue is sized by concurrency.
func TestIdleConsumerWithLargePrefetchIsSmall(t *testing.T) {
	q := rawQueue(t)
	c := newClient(t, testbroker.URL(t))
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	var logs testbroker.LogBuffer
	k, err := consumer.New(c, q, consumer.WithPrefetch(65535), consumer.WithConcurrency(8),
		consumer.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	run(t, k, ack)
	testbroker.Eventually(t, 10*time.Second, "subscribed", func() bool { return strings.Contains(logs.String(), "consumer: subscribed") })
	after := heap()
	grew := int64(after) - int64(before)
	// Generous: a preallocated 65 535-slot queue is ~19 MiB.
	if grew > 4<<20 {
		t.Fatalf("an idle consumer with prefetch 65535 grew the heap by %d KiB", grew>>10)
	}
	t.Logf("idle consumer, prefetch 65535, concurrency 8: heap grew by %d KiB", grew>>10)
}
