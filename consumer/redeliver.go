package consumer

import (
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"sync/atomic"

	amqp "github.com/rabbitmq/amqp091-go"
)

// failureRecordSize bounds the consumer's own record of failed messages: the
// oldest entry goes first when it is full (a message that failed that long ago
// starts its count again).
const failureRecordSize = 10_000

// failures counts, per message, how often the handler failed on it, for
// queues whose deliveries carry no x-delivery-count. It lives on the Consumer,
// so it survives reconnects. Guarded by mu; used by the handler goroutines.
type failures struct {
	mu    sync.Mutex
	count map[string]int
	order []string // ring of keys, oldest at next
	next  int
	size  atomic.Int64 // len(count), read without mu: an empty record needs no key
}

// empty reports whether no failure is recorded: the common case, in which a
// delivery's key need not be computed (a hash of its body when it has no ID).
func (f *failures) empty() bool { return f.size.Load() == 0 }

func (f *failures) get(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.count[key]
}

// add records one more failure of key and returns the new count.
func (f *failures) add(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.count == nil {
		f.count = make(map[string]int)
	}
	if n, ok := f.count[key]; ok {
		f.count[key] = n + 1
		return n + 1
	}
	if len(f.order) < failureRecordSize {
		f.order = append(f.order, key)
	} else {
		delete(f.count, f.order[f.next])
		f.order[f.next] = key
		f.next = (f.next + 1) % failureRecordSize
	}
	f.count[key] = 1
	f.size.Store(int64(len(f.count)))
	return 1
}

// forget drops key once its message is settled for good. Its slot in the ring
// stays until it comes round (deleting a missing key there is harmless).
func (f *failures) forget(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.count, key)
	f.size.Store(int64(len(f.count)))
}

// failureKey identifies a message across redeliveries: its message ID, or a
// hash of its body and routing when it has none.
func failureKey(d *amqp.Delivery) string {
	if d.MessageId != "" {
		return "id:" + d.MessageId
	}
	h := sha256.New()
	h.Write([]byte(d.Exchange))
	h.Write([]byte{0})
	h.Write([]byte(d.RoutingKey))
	h.Write([]byte{0})
	h.Write(d.Body)
	return "sha:" + hex.EncodeToString(h.Sum(nil)[:16])
}

// brokerDeliveryCount returns the x-delivery-count header (deliveries before
// this one) and whether the queue counts at all. LavinMQ leaves the header out
// of the first delivery, RabbitMQ's quorum queues too before 4.0: an absent
// header is 0 there, and our own record decides (max of both).
func brokerDeliveryCount(h amqp.Table) (int, bool) {
	switch v := h["x-delivery-count"].(type) {
	case int64:
		return int(v), true
	case int32:
		return int(v), true
	case int16:
		return int(v), true
	case int8:
		return int(v), true
	case int:
		return int(v), true
	case uint8:
		return int(v), true
	case uint16:
		return int(v), true
	case uint32:
		return int(v), true
	}
	return 0, false
}

// failureKeyOf returns the delivery's failure key, computing it on first use
// into *key.
func failureKeyOf(d *amqp.Delivery, key *string) string {
	if *key == "" {
		*key = failureKey(d)
	}
	return *key
}

// priorFailures returns how often the delivery has failed before, by the
// broker's count and our own record, whichever is higher. The key (in *key)
// is computed only when the record holds something.
func (k *Consumer) priorFailures(d *amqp.Delivery, key *string) int {
	own := 0
	if !k.failed.empty() {
		own = k.failed.get(failureKeyOf(d, key))
	}
	if n, ok := brokerDeliveryCount(d.Headers); ok && n > own {
		return n
	}
	return own
}
