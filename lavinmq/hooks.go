package lavinmq

import (
	"fmt"
	"runtime/debug"
	"time"
)

// Hooks are values of any type passed to WithHooks; the client calls the
// methods of the interfaces below that a value implements. Adding a hook
// interface never breaks an existing hook. Hooks run on the client's own
// goroutines (the supervisor, the blocked-state watcher, the topology retry),
// never on amqp091-go's I/O goroutine, and may be called concurrently; they
// must return quickly (count, log, set a gauge) because the next reconnect
// step waits for them. A hook that panics is recovered and logged.
//
// Every event names its client (Client: the client's Name), so that one hook
// value (a metrics.Metrics, say) can serve several clients and tell them apart.

// Detector says which of the three means noticed a lost connection.
type Detector string

const (
	// DetectedByNotify: amqp091-go's close notification (broker close, socket
	// error, heartbeat timeout, write timeout) fired.
	DetectedByNotify Detector = "notify"
	// DetectedByPoll: the health poll found the connection closed although no
	// notification arrived.
	DetectedByPoll Detector = "poll"
)

// ConnectedEvent describes a successful connection.
type ConnectedEvent struct {
	Client    string        // the client's Name
	Endpoint  string        // host:port, never with credentials
	Attempts  int           // dial attempts this (re)connection took, >= 1
	Reconnect bool          // false for the first connection of the client
	Downtime  time.Duration // since the previous connection was lost (0 for the first)
}

// DisconnectedEvent describes a lost connection.
type DisconnectedEvent struct {
	Client     string // the client's Name
	Endpoint   string
	Err        error // the broker's *amqp091.Error or the I/O error, if known
	DetectedBy Detector
}

// ReconnectAttemptEvent describes one failed dial and the wait before the next.
type ReconnectAttemptEvent struct {
	Client   string // the client's Name
	Endpoint string
	Attempt  int
	Err      error
	Delay    time.Duration // 0 when the next URL is tried at once
}

// BlockedEvent describes a change of the broker's connection.blocked state
// of the connection in service. A block ends without an event when its
// connection is lost (a DisconnectedEvent follows; the next connection starts unblocked).
type BlockedEvent struct {
	Client  string // the client's Name
	Blocked bool   // true: connection.blocked (publishing paused); false: connection.unblocked
	Reason  string // the broker's reason, e.g. "low on memory"; empty on unblock
}

// TopologyErrorEvent describes a recorded declaration that the broker refused
// when it was replayed on a new connection. The replay goes on with the others.
type TopologyErrorEvent struct {
	Client string // the client's Name
	Kind   string // "exchange", "queue" or "binding"
	Name   string // the exchange or queue name; "queue<-exchange" for a binding
	Err    error  // the broker's *amqp091.Error (for example 406 PRECONDITION_FAILED)
}

// HookConnected is called once the connection is open and the recorded topology replayed.
type HookConnected interface{ OnConnected(ConnectedEvent) }

// HookDisconnected is called when a connection is lost (not on Close).
type HookDisconnected interface{ OnDisconnected(DisconnectedEvent) }

// HookReconnectAttempt is called after each failed dial.
type HookReconnectAttempt interface {
	OnReconnectAttempt(ReconnectAttemptEvent)
}

// HookBlocked is called when the broker blocks (connection.blocked) or unblocks the connection.
type HookBlocked interface {
	OnBlocked(BlockedEvent)
}

// HookTopologyError is called when replaying a recorded declaration fails after a reconnect.
type HookTopologyError interface {
	OnTopologyError(TopologyErrorEvent)
}

// eachHook calls f with every hook value. A hook that panics is recovered
// and logged; the supervisor goes on.
func (c *Client) eachHook(f func(any)) {
	for _, h := range c.cfg.hooks {
		c.callHook(f, h)
	}
}

func (c *Client) callHook(f func(any), h any) {
	defer func() {
		if v := recover(); v != nil {
			c.log.Error("lavinmq: hook panicked; recovered", "hook", fmt.Sprintf("%T", h), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		}
	}()
	f(h)
}

// isHook reports whether h implements at least one hook interface: a value
// that implements none (a misspelt method) would silently do nothing.
func isHook(h any) bool {
	switch h.(type) {
	case HookConnected, HookDisconnected, HookReconnectAttempt, HookBlocked, HookTopologyError:
		return true
	}
	return false
}
