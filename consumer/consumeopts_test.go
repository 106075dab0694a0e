package consumer_test

import (
	"errors"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/consumer"
)

func TestNewRejectsBadRedeliveryStreamAndConsumeOptions(t *testing.T) {
	c := offlineClient(t)
	cases := []struct {
		name string
		opts []consumer.Option
	}{
		{"max redeliveries negative", []consumer.Option{consumer.WithMaxRedeliveries(-1)}},
		{"requeue delay negative", []consumer.Option{consumer.WithRequeueDelay(-time.Millisecond, time.Second)}},
		{"requeue max below initial", []consumer.Option{consumer.WithRequeueDelay(time.Second, time.Millisecond)}},
		{"stream offset unknown word", []consumer.Option{consumer.WithStreamOffset("start")}},
		{"stream offset negative", []consumer.Option{consumer.WithStreamOffset(int64(-1))}},
		{"stream offset zero time", []consumer.Option{consumer.WithStreamOffset(time.Time{})}},
		{"stream offset float", []consumer.Option{consumer.WithStreamOffset(1.5)}},
		{"stream offset nil", []consumer.Option{consumer.WithStreamOffset(nil)}},
		{"stream with max redeliveries", []consumer.Option{consumer.WithStreamOffset("first"), consumer.WithMaxRedeliveries(3)}},
		{"stream offset twice", []consumer.Option{consumer.WithStreamOffset("first"), consumer.WithConsumeArgs(amqp.Table{"x-stream-offset": "last"})}},
		{"priority twice", []consumer.Option{consumer.WithPriority(1), consumer.WithConsumeArgs(amqp.Table{"x-priority": int32(2)})}},
		{"consume args not encodable", []consumer.Option{consumer.WithConsumeArgs(amqp.Table{"x": struct{}{}})}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k, err := consumer.New(c, "q", tc.opts...)
			if !errors.Is(err, consumer.ErrInvalidConfig) {
				t.Fatalf("New: got (%v, %v), want ErrInvalidConfig", k, err)
			}
			t.Log(err)
		})
	}
}

func TestNewAcceptsRedeliveryStreamAndConsumeOptions(t *testing.T) {
	c := offlineClient(t)
	for _, opts := range [][]consumer.Option{
		{consumer.WithMaxRedeliveries(0)},
		{consumer.WithMaxRedeliveries(1), consumer.WithRequeueDelay(0, 0)},
		{consumer.WithStreamOffset("first")}, {consumer.WithStreamOffset("last")}, {consumer.WithStreamOffset("next")},
		{consumer.WithStreamOffset(int64(0))}, {consumer.WithStreamOffset(42)}, {consumer.WithStreamOffset(time.Now())},
		{consumer.WithStreamOffset("first"), consumer.WithMaxRedeliveries(0)},
		{consumer.WithPriority(-5), consumer.WithExclusive(), consumer.WithConsumeArgs(amqp.Table{"x-cancel-on-ha-failover": true})},
	} {
		k, err := consumer.New(c, "q", opts...)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		if off, ok := k.StreamOffset(); ok {
			t.Fatalf("fresh consumer has a stream offset %d", off)
		}
	}
}
