package lavinmq_test

import (
	"fmt"
	"time"

	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

// attempts is a hook value: the client calls the methods of the hook
// interfaces it implements (here only HookReconnectAttempt), on its own
// goroutine, never on the connection's.
type attempts chan lavinmq.ReconnectAttemptEvent

func (a attempts) OnReconnectAttempt(ev lavinmq.ReconnectAttemptEvent) {
	select {
	case a <- ev:
	default: // a hook must never block
	}
}

// Hooks report connects, losses, failed attempts and blocked state; package
// metrics implements them for Prometheus. Here nothing listens on the port,
// so the hook sees a failed attempt.
func ExampleWithHooks() {
	seen := make(attempts, 1)
	c, err := lavinmq.New("amqp://guest:secret@127.0.0.1:1/",
		lavinmq.WithConnectionName("orders-api"), lavinmq.WithHooks(seen))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	select {
	case ev := <-seen:
		fmt.Printf("%s: attempt %d to %s failed\n", ev.Client, ev.Attempt, ev.Endpoint)
	case <-time.After(10 * time.Second):
		fmt.Println("no attempt reported")
	}
	// Output:
	// orders-api: attempt 1 to 127.0.0.1:1 failed
}
