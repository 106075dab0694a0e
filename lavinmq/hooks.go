package lavinmq

import "time"

// Hooks are values of any type passed to WithHooks; the client calls the
// methods of the interfaces below that a value implements. Adding a hook
// interface never breaks an existing hook. Hooks run on the client's own
// supervisor goroutine, never on amqp091-go's I/O goroutine; they must return
// quickly (count, log, set a gauge) because the next reconnect step waits for them.

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
	Endpoint  string        // host:port, never with credentials
	Attempts  int           // dial attempts this (re)connection took, >= 1
	Reconnect bool          // false for the first connection of the client
	Downtime  time.Duration // since the previous connection was lost (0 for the first)
}

// DisconnectedEvent describes a lost connection.
type DisconnectedEvent struct {
	Endpoint   string
	Err        error // the broker's *amqp091.Error or the I/O error, if known
	DetectedBy Detector
}

// ReconnectAttemptEvent describes one failed dial and the wait before the next.
type ReconnectAttemptEvent struct {
	Endpoint string
	Attempt  int
	Err      error
	Delay    time.Duration // 0 when the next URL is tried at once
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
	OnBlocked(blocked bool, reason string)
}

// HookTopologyError is called when replaying a recorded declaration fails after a reconnect.
type HookTopologyError interface {
	OnTopologyError(kind, name string, err error)
}

func (c *Client) eachHook(f func(any)) {
	for _, h := range c.cfg.hooks {
		f(h)
	}
}
