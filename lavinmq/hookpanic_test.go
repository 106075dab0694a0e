package lavinmq_test

import (
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

type misspelt struct{}

func (misspelt) OnConnect(lavinmq.ConnectedEvent) {} // the interface wants OnConnected

// TestHooksMustImplementAnInterface: a value that implements no hook
// interface (a misspelt method) is refused by New.
func TestHooksMustImplementAnInterface(t *testing.T) {
	_, err := lavinmq.New("amqp://127.0.0.1:1/", lavinmq.WithHooks(misspelt{}))
	if !errors.Is(err, lavinmq.ErrInvalidConfig) || !strings.Contains(err.Error(), "misspelt") {
		t.Fatalf("New with a non-hook = %v, want ErrInvalidConfig naming the type", err)
	}
}

type panickingHook struct{ connected, disconnected atomic.Int64 }

func (h *panickingHook) OnConnected(lavinmq.ConnectedEvent) {
	h.connected.Add(1)
	panic("connected hook")
}
func (h *panickingHook) OnDisconnected(lavinmq.DisconnectedEvent) {
	h.disconnected.Add(1)
	panic("disconnected hook")
}

// TestPanickingHooksDoNotStopTheSupervisor: hooks that panic are recovered
// and logged; the client keeps reconnecting.
func TestPanickingHooksDoNotStopTheSupervisor(t *testing.T) {
	h := &panickingHook{}
	var logs testbroker.LogBuffer
	c, err := lavinmq.New(testbroker.URL(t), lavinmq.WithHooks(h), lavinmq.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))),
		lavinmq.WithConnectionName(testbroker.Name(t, "panicky")))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitConnected(t, c, 10*time.Second)
	testbroker.CloseAllConnections(t)
	testbroker.Eventually(t, 15*time.Second, "a reconnect after the panicking hooks", func() bool { return h.connected.Load() >= 2 && c.Connected() })
	if h.disconnected.Load() < 1 {
		t.Fatalf("OnDisconnected called %d times", h.disconnected.Load())
	}
	if out := logs.String(); !strings.Contains(out, "hook panicked") {
		t.Fatalf("the panics were not logged:\n%.1500s", out)
	}
}
