// Package producer publishes messages through a lavinmq.Client without ever
// waiting on the network, and accounts for every message it accepts.
//
//	p, err := producer.New(client, "orders",
//		producer.WithMode(producer.Confirm),     // default: at-least-once
//		producer.WithPolicy(buffer.DropOldest),  // what a full buffer does
//		producer.OnDrop(func(m producer.Message, queue string, r producer.DropReason) {
//			log.Printf("dropped %s: %s", m.MessageID, r)
//		}))
//	err = p.Publish(ctx, producer.Message{Body: []byte("hello")}) // enqueue only
//	err = p.Flush(ctx)                                            // wait for confirms
//	err = p.Close(ctx)                                            // drain, then stop
//
// Publish validates the message and puts it in a preallocated lock-free ring
// (package buffer). One publisher goroutine per producer drains the ring onto
// its own AMQP channel.
//
// # Routing keys and one message's outcome
//
// A producer has one exchange (the default exchange and the queue's name,
// or WithExchange(exchange, key)); each message can carry its own routing key
// on it, Message.RoutingKey, so one producer serves every key of a topic
// exchange. OnDrop shows the key a message was published with.
//
//	p, err := producer.New(client, "orders", producer.WithExchange("events", "order.unknown"))
//	err = p.Publish(ctx, producer.Message{RoutingKey: "order.paid.eu", Body: b})
//	err = p.PublishSync(ctx, producer.Message{RoutingKey: "order.created", Body: b}) // waits for its confirm
//
// PublishSync returns nil once the broker confirmed that message, a
// *DropError (errors.Is(err, Unroutable), ...) when it was dropped, or ctx's
// error, the message still accepted and reported later.
//
// # Guarantees
//
// Every message for which Publish returned nil ends in exactly one of:
// confirmed by the broker (Confirm mode) or written to the socket
// (FireAndForget), or one call of the OnDrop callback with a DropReason.
// Stats().Accepted == Confirmed + Dropped + Pending at every observation.
//
// That promise holds while the process lives. Accepted messages that the
// broker has not confirmed yet (Stats().Pending) exist only in the process's
// memory: if it is killed (SIGKILL, an OOM kill, a crash, a deploy that does
// not call Close) they are lost, and no OnDrop runs. Call Close(ctx) on
// shutdown (it flushes first), and wait for a confirm (PublishSync or Flush)
// before acting on a message that must not be lost with the process.
//
// Confirm mode is at-least-once: a message leaves the producer's retry set
// only when the broker acks it. When the channel or the connection is lost,
// every unconfirmed message is published again first, in its original order,
// then the buffer resumes; so a consumer can see duplicates (same MessageID:
// a message without one gets a stable ID, "<producer prefix>-<n>", when
// Publish accepts it). Messages are persistent by default in Confirm
// mode: a confirmed message on a durable queue survives a broker restart.
// Messages are published with the mandatory flag, so a message no queue
// accepts is reported with reason Unroutable instead of being acked and lost.
// A nack closes the channel and the unconfirmed messages are sent again on a
// new one; a message nacked on more attempts than the retry budget is
// reported with reason Nacked.
//
// FireAndForget is at-most-once: a message counts as written once it is
// handed to the socket; messages written just before a connection dies can
// be lost without a report, because AMQP gives no way to know. What is still
// in the buffer during an outage waits for the reconnect. Messages are
// transient by default.
//
// # Write coalescing
//
// The publisher writes the messages it takes in one go (a burst, at most
// 256, never more than the confirm window has room for) under a cork of the
// client's connection (lavinmq.Conn.Cork): the burst reaches the socket in
// one write, instead of one per message as amqp091-go does on its own. The
// cork ends before the publisher waits for anything, so other writers of the
// connection (consumers' acks, heartbeats) wait at most for one burst. A
// FireAndForget message counts as written only when the write of its burst
// succeeded; when it fails, the burst's messages are published again after
// the reconnect. lavinmq.WithWriteCoalescing(false) turns it off.
//
// # Poison messages
//
// No message can stall a producer or take the connection down. Publish
// refuses, with ErrInvalidMessage naming the field, what amqp091-go cannot
// encode (short strings and header keys over 255 bytes, header values of
// types AMQP tables cannot hold) or what does not fit one frame. Whatever
// slips through is dropped with reason Invalid: at once when its publish
// fails before reaching the socket, or after the poison budget
// (WithPoisonBudget, default 3) when the broker keeps closing the channel or
// connection for a reason that points at a message while it is alone in
// flight.
//
// # Flush and Close
//
// Flush returns nil only when every message accepted before the call has
// settled; on timeout its error names the last problem met. Close returns nil
// when nothing had to be dropped with reason Shutdown, an error wrapping
// ErrDropped otherwise.
//
// # Ownership
//
// Publish does not copy Body or Headers: the producer reads them until the
// message settles (at every re-send too). Do not modify or reuse them before.
//
// Publish never waits on the network. The buffer is bounded twice: in
// messages (WithBufferSize, 10 000) and in bytes (WithBufferBytes, 16 MiB by
// default, DefaultBufferBytes: the bodies, headers and string properties of
// the messages buffered and in flight together). When a message would pass
// either limit the policy decides: buffer.DropOldest evicts the oldest
// buffered messages until it fits and reports each with reason Evicted;
// buffer.Raise returns buffer.ErrFull (ErrBytesFull, which wraps it, for the
// bytes); buffer.Block waits for room until ctx ends (never spinning). A
// message larger than the whole byte budget is refused with ErrTooLarge.
// Stats shows the bytes (PendingBytes, BufferedBytes, InFlightBytes) and the
// budget (CapacityBytes).
//
// A channel the broker closes (404 unknown exchange, 406 precondition, 403)
// is reopened with backoff on the same connection: other producers and the
// connection are not disturbed, and the messages are kept. A broker
// connection.blocked (memory or disk alarm) pauses the publisher: the buffer
// absorbs and the policy applies. Close drains until its ctx ends, then
// reports what is left with reason Shutdown (messages in flight at that
// moment may still have reached the broker).
//
// Hooks (WithHooks) feed metrics: see HookProducerOpened and the others. The
// OnDrop callback and hooks run on the publisher goroutine (or, for Evicted,
// on the goroutine calling Publish), never on amqp091-go's I/O goroutine.
package producer
