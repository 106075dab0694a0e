package lavinmq_test

import (
	"context"
	"fmt"
	"time"

	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

func ExampleClient_QueueName() {
	c, err := lavinmq.New("amqp://guest:guest@127.0.0.1:5672/")
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A server-named queue: recorded under the name the broker returns now,
	// declared again (with a new name) after every reconnect.
	q, err := c.DeclareQueue(ctx, lavinmq.Queue{Exclusive: true, AutoDelete: true})
	if err != nil {
		fmt.Println("declare:", err)
		return
	}
	// The binding follows the queue to its new names.
	if err := c.BindQueue(ctx, lavinmq.Binding{Queue: q.Name, Exchange: "amq.topic", Key: "orders.#"}); err != nil {
		fmt.Println("bind:", err)
		return
	}
	// Later, e.g. to publish to it directly: its name now.
	fmt.Println(c.QueueName(q.Name) != "")
}
