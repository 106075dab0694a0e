package lavinmq

import (
	"log/slog"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

type blockedRecorder struct{ events []BlockedEvent }

var _ HookBlocked = (*blockedRecorder)(nil)

func (r *blockedRecorder) OnBlocked(ev BlockedEvent) { r.events = append(r.events, ev) }

// TestBlockedEventCarriesClientAndReason feeds connection.blocked and
// unblocked notifications to the watcher of the connection in service.
func TestBlockedEventCarriesClientAndReason(t *testing.T) {
	rec := &blockedRecorder{}
	c := &Client{cfg: cfg{name: "orders-service", hooks: []any{rec}}, log: slog.New(slog.DiscardHandler), blockedChanged: make(chan struct{})}
	cn := &Conn{endpoint: "127.0.0.1:5672"}
	c.cur = cn
	ch := make(chan amqp.Blocking, 2)
	ch <- amqp.Blocking{Active: true, Reason: "low on memory"}
	ch <- amqp.Blocking{Active: false}
	close(ch)
	c.wg.Add(1)
	c.watchBlocked(cn, ch)
	want := []BlockedEvent{{Client: "orders-service", Blocked: true, Reason: "low on memory"}, {Client: "orders-service"}}
	if len(rec.events) != len(want) || rec.events[0] != want[0] || rec.events[1] != want[1] {
		t.Fatalf("events = %+v, want %+v", rec.events, want)
	}
}
