package lavinmq_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

func ExampleNew() {
	c, err := lavinmq.New("amqp://guest:guest@127.0.0.1:5672/",
		lavinmq.WithFailover("amqp://guest:guest@127.0.0.1:5673/"),
		lavinmq.WithHeartbeat(5*time.Second),
		lavinmq.WithConnectionName("orders-service"),
		lavinmq.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, nil))),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	fmt.Println("connecting in the background")
	// Output: connecting in the background
}

func ExampleNew_invalid() {
	_, err := lavinmq.New("http://user:secret@127.0.0.1/")
	fmt.Println(err)
	// Output: lavinmq: invalid configuration: broker URL "http://user:xxxxx@127.0.0.1/": scheme must be amqp or amqps, got "http"
}

func ExampleClient_DeclareQueue() {
	c, err := lavinmq.New("amqp://guest:guest@127.0.0.1:5672/")
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Declared now and again after every reconnect.
	if _, err := c.DeclareQueue(ctx, lavinmq.Queue{Name: "orders", Durable: true}); err != nil {
		fmt.Println("declare:", err)
	}
}

func ExampleClient_Connection() {
	c, err := lavinmq.New("amqp://guest:guest@127.0.0.1:5672/")
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ctx := context.Background()
	for ctx.Err() == nil {
		conn, err := c.Connection(ctx) // waits for a connection with its topology replayed
		if err != nil {
			return // ctx done or client closed
		}
		ch, err := conn.Channel()
		if err != nil {
			continue // lost meanwhile: ask again
		}
		// ... use ch until the connection is replaced:
		<-conn.Done()
		_ = ch
	}
}
