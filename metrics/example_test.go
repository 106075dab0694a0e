package metrics_test

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/c3ecadf2/lavinmq-go/lavinmq"
	"github.com/c3ecadf2/lavinmq-go/metrics"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

// One Metrics value feeds on the hooks of the client, its producers and its
// consumers. Here the broker is unreachable, so a 2-message buffer evicts.
func ExampleNew() {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		panic(err)
	}
	c, _ := lavinmq.New("amqp://guest:guest@127.0.0.1:1/", lavinmq.WithHooks(m))
	defer c.Close()
	p, _ := producer.New(c, "orders", producer.WithBufferSize(2), producer.WithHooks(m))
	for range 3 {
		_ = p.Publish(context.Background(), producer.Message{Body: []byte("x")})
	}
	n, _ := testutil.GatherAndCount(reg, "lavinmq_producer_messages_dropped_total")
	fmt.Println("dropped series (one per reason):", n)
	fmt.Println("evicted:", sample(reg, "lavinmq_producer_messages_dropped_total", map[string]string{"reason": "evicted"}))
	fmt.Println("buffered:", sample(reg, "lavinmq_producer_buffered_messages", nil))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_ = p.Close(ctx)
	// Output:
	// dropped series (one per reason): 6
	// evicted: 1
	// buffered: 2
}
