// Package lavinmq is the connection layer of lavinmq-go, a resilient AMQP
// 0-9-1 client for LavinMQ and RabbitMQ built on github.com/rabbitmq/amqp091-go.
//
// A Client owns one AMQP connection and brings it back by itself:
//
//	c, err := lavinmq.New("amqp://guest:guest@127.0.0.1:5672/",
//		lavinmq.WithFailover("amqp://guest:guest@10.0.0.2:5672/"),
//		lavinmq.WithLogger(slog.Default()))
//	if err != nil {
//		return err // bad URL or option: New never dials
//	}
//	defer c.Close()
//	if err := c.WaitConnected(ctx); err != nil {
//		return err
//	}
//
// New returns at once and connects in the background. A lost connection is
// detected three ways: amqp091-go's close notification (at once), a health
// poll every 100 ms (a failsafe for a missed notification), and AMQP
// heartbeats (half-open or blackholed TCP; about three heartbeat intervals).
// Every socket write is bounded by a write timeout as well. Reconnect attempts
// go through the URLs in turn and wait, after each full round of failures, an
// exponential backoff with jitter (100 ms doubling to 30 s by default). The
// backoff starts over only after a connection has stayed up for max(1s, 10 ×
// initial delay), so a peer that accepts and then drops connections sees
// exponentially slower redials. While not connected, WaitConnected's error
// says why (the last attempt's error); WithFailFast gives up at once on a
// first connection that cannot succeed (login, vhost, TLS certificate).
//
// Queues, exchanges and bindings declared through the Client (DeclareQueue,
// DeclareExchange, BindQueue) are recorded and declared again on every new
// connection before it is handed out, so producers and consumers that resume on
// it find their topology in place. Declarations are checked before anything
// is sent (ErrInvalidTopology) and recorded only once the broker accepted
// them. A server-named queue (empty name) gets a new name at every replay:
// QueueName maps the first name to the current one.
//
// The producer and consumer packages build on Connection: it returns the
// connection in service (waiting for one), whose Done channel is closed when it
// is lost. Blocked reports the broker's connection.blocked state with a channel
// that is closed at the next change.
//
// Hooks (WithHooks) report connects, losses with the means that detected them,
// failed attempts and blocked state; the metrics package turns them into
// Prometheus series. Passwords in URLs never appear in logs, errors or hook
// events.
package lavinmq
