package lavinmq_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

func TestClientNameIsTheConnectionName(t *testing.T) {
	c, err := lavinmq.New("amqp://127.0.0.1:1/", lavinmq.WithConnectionName("orders-service"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.Name(); got != "orders-service" {
		t.Fatalf("Name() = %q, want the connection name %q", got, "orders-service")
	}
}

func TestClientNameIsGeneratedAndUniqueWithoutConnectionName(t *testing.T) {
	re := regexp.MustCompile(`^lavinmq-go-[0-9a-f]{8}$`)
	seen := map[string]bool{}
	for range 20 {
		c, err := lavinmq.New("amqp://127.0.0.1:1/", lavinmq.WithConnectionName(""))
		if err != nil {
			t.Fatal(err)
		}
		name := c.Name()
		c.Close()
		if !re.MatchString(name) {
			t.Fatalf("generated name %q does not match %s", name, re)
		}
		if seen[name] {
			t.Fatalf("generated name %q given twice", name)
		}
		seen[name] = true
	}
}

func TestNewRejectsConnectionNameThatIsNotUTF8(t *testing.T) {
	_, err := lavinmq.New("amqp://127.0.0.1:1/", lavinmq.WithConnectionName("bad\xff"))
	if !errors.Is(err, lavinmq.ErrInvalidConfig) {
		t.Fatalf("New = %v, want ErrInvalidConfig", err)
	}
}

// namedEvents records the client names that the connection hooks see.
type namedEvents struct {
	mu         sync.Mutex
	connected  []string
	lost       []string
	attempts   []string
	topoErrors []lavinmq.TopologyErrorEvent
}

func (e *namedEvents) OnConnected(ev lavinmq.ConnectedEvent) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.connected = append(e.connected, ev.Client)
}

func (e *namedEvents) OnDisconnected(ev lavinmq.DisconnectedEvent) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.lost = append(e.lost, ev.Client)
}

func (e *namedEvents) OnReconnectAttempt(ev lavinmq.ReconnectAttemptEvent) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.attempts = append(e.attempts, ev.Client)
}

func (e *namedEvents) OnTopologyError(ev lavinmq.TopologyErrorEvent) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.topoErrors = append(e.topoErrors, ev)
}

func (e *namedEvents) snapshot() (connected, lost, attempts []string, topo []lavinmq.TopologyErrorEvent) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.connected...), append([]string(nil), e.lost...),
		append([]string(nil), e.attempts...), append([]lavinmq.TopologyErrorEvent(nil), e.topoErrors...)
}

func allEqual(names []string, want string) bool {
	for _, n := range names {
		if n != want {
			return false
		}
	}
	return true
}

// TestHookEventsCarryTheClientName: connected, disconnected and
// reconnect-attempt events name their client, and the broker shows the
// generated name as the connection's name.
func TestHookEventsCarryTheClientName(t *testing.T) {
	px := testbroker.NewProxy(t)
	ev := &namedEvents{}
	c, err := lavinmq.New(px.URL, lavinmq.WithHooks(ev), lavinmq.WithReconnectDelay(50*time.Millisecond, 200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	name := c.Name()
	waitConnected(t, c, 10*time.Second)
	if out := testbroker.Connections(t); !strings.Contains(out, name) {
		t.Errorf("broker's connections do not show the name %q:\n%s", name, out)
	}
	px.Disable()
	testbroker.Eventually(t, 10*time.Second, "a failed reconnect attempt", func() bool {
		_, _, att, _ := ev.snapshot()
		return len(att) > 0
	})
	px.Enable()
	testbroker.Eventually(t, 10*time.Second, "the reconnect", func() bool {
		conn, _, _, _ := ev.snapshot()
		return len(conn) == 2
	})
	conn, lost, att, _ := ev.snapshot()
	t.Logf("client %q: %d connected, %d disconnected, %d attempt events", name, len(conn), len(lost), len(att))
	if len(lost) != 1 || !allEqual(conn, name) || !allEqual(lost, name) || !allEqual(att, name) {
		t.Fatalf("events name other clients: connected %q, disconnected %q, attempts %q; want all %q", conn, lost, att, name)
	}
}

// TestTopologyErrorEventNamesClientKindAndName: a recorded queue that the
// broker refuses on replay (redeclared meanwhile with other properties) is
// reported with the client's name, its kind and name, and the broker's 406.
func TestTopologyErrorEventNamesClientKindAndName(t *testing.T) {
	ev := &namedEvents{}
	c, err := lavinmq.New(testbroker.URL(t), lavinmq.WithHooks(ev), lavinmq.WithConnectionName(testbroker.Name(t, "conn")))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q := testbroker.Name(t, "q")
	if _, err := c.DeclareQueue(ctx, lavinmq.Queue{Name: q, AutoDelete: false}); err != nil {
		t.Fatal(err)
	}
	raw := testbroker.Raw(t)
	if _, err := raw.QueueDelete(q, false, false, false); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.QueueDeclare(q, true, false, false, false, nil); err != nil { // durable now
		t.Fatal(err)
	}
	defer func() { _, _ = testbroker.Raw(t).QueueDelete(q, false, false, false) }()
	testbroker.CloseAllConnections(t)
	testbroker.Eventually(t, 20*time.Second, "the topology error and the reconnect", func() bool {
		conn, _, _, topo := ev.snapshot()
		return len(topo) > 0 && len(conn) == 2
	})
	_, _, _, topo := ev.snapshot()
	got := topo[0]
	t.Logf("topology error event: client %q kind %q name %q err %v", got.Client, got.Kind, got.Name, got.Err)
	var ae *amqp.Error
	if got.Client != c.Name() || got.Kind != "queue" || got.Name != q || !errors.As(got.Err, &ae) || ae.Code != amqp.PreconditionFailed {
		t.Fatalf("event = %+v, want client %q kind queue name %q and a 406", got, c.Name(), q)
	}
}

var (
	_ lavinmq.HookConnected        = (*namedEvents)(nil)
	_ lavinmq.HookDisconnected     = (*namedEvents)(nil)
	_ lavinmq.HookReconnectAttempt = (*namedEvents)(nil)
	_ lavinmq.HookTopologyError    = (*namedEvents)(nil)
)
