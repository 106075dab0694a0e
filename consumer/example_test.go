package consumer_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"

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

// A stream consumer that resumes where the previous run of the program
// stopped: it stores the last settled offset and passes offset+1 back.
func ExampleWithStreamOffset() {
	c, err := lavinmq.New("amqp://guest:guest@127.0.0.1:5672/")
	if err != nil {
		panic(err)
	}
	defer c.Close()
	var from any = "first"
	if stored, ok := loadOffset(); ok {
		from = stored + 1
	}
	k, err := consumer.New(c, "events", consumer.WithStreamOffset(from), consumer.WithPrefetch(200))
	if err != nil {
		panic(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err = k.Run(ctx, func(ctx context.Context, d consumer.Delivery) consumer.Action {
		fmt.Printf("event %d: %s\n", d.StreamOffset, d.Body)
		return consumer.Ack
	})
	if off, ok := k.StreamOffset(); ok {
		saveOffset(off)
	}
	fmt.Println("stopped:", err) // context.Canceled after Ctrl-C: the normal end
}

// offsetFile is where this example keeps the offset between runs.
func offsetFile() string { return filepath.Join(os.TempDir(), "events.offset") }

func loadOffset() (int64, bool) {
	b, err := os.ReadFile(offsetFile())
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n, err == nil
}

func saveOffset(off int64) {
	_ = os.WriteFile(offsetFile(), []byte(strconv.FormatInt(off, 10)), 0o600)
}
