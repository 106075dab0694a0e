package consumer_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"

	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

func ExampleNew() {
	c, err := lavinmq.New("amqp://guest:guest@127.0.0.1:5672/")
	if err != nil {
		panic(err)
	}
	defer c.Close()
	_, err = consumer.New(c, "orders", consumer.WithPrefetch(0))
	fmt.Println(err)
	// Output: consumer: invalid configuration: prefetch must be >= 1, got 0
}

func ExampleConsumer_Run() {
	c, err := lavinmq.New("amqp://guest:guest@127.0.0.1:5672/")
	if err != nil {
		panic(err)
	}
	defer c.Close()
	k, err := consumer.New(c, "orders",
		consumer.WithPrefetch(50),
		consumer.WithConcurrency(8),
		consumer.WithDeclare(nil), // durable, declared again after every reconnect
		consumer.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, nil))),
	)
	if err != nil {
		panic(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	// Until Ctrl-C; in-flight handlers finish and are acked before Run returns.
	err = k.Run(ctx, func(ctx context.Context, d consumer.Delivery) consumer.Action {
		if len(d.Body) == 0 {
			return consumer.NackDiscard // poison: drop or dead-letter it
		}
		fmt.Printf("order %s\n", d.Body)
		return consumer.Ack
	})
	fmt.Println("stopped:", err, k.Stats())
}
