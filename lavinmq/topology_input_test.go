package lavinmq_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

// TestTopologyLongNamesRefusedConnectionStays: a 300-byte name (or key, or
// kind, or args key) in any declaration is refused at the call with
// ErrInvalidTopology naming the field; nothing reaches the wire, so the
// connection stays up and nothing is recorded.
func TestTopologyLongNamesRefusedConnectionStays(t *testing.T) {
	te := &topoErrors{}
	c, ev := newClient(t, testbroker.URL(t), lavinmq.WithHooks(te))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	gen := clientConn(t, c).Generation()
	long := strings.Repeat("n", 300)
	ex, q := testbroker.Name(t, "ex"), testbroker.Name(t, "q")
	if err := c.DeclareExchange(ctx, lavinmq.Exchange{Name: ex, Kind: "direct", AutoDelete: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeclareQueue(ctx, lavinmq.Queue{Name: q, Exclusive: true}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, field string
		call        func() error
	}{
		{"queue name", "queue name", func() error { _, err := c.DeclareQueue(ctx, lavinmq.Queue{Name: long}); return err }},
		{"queue args key", "queue args", func() error {
			_, err := c.DeclareQueue(ctx, lavinmq.Queue{Name: q + "-2", Args: amqp.Table{long: "v"}})
			return err
		}},
		{"exchange name", "exchange name", func() error {
			return c.DeclareExchange(ctx, lavinmq.Exchange{Name: long, Kind: "direct"})
		}},
		{"exchange kind", "exchange kind", func() error {
			return c.DeclareExchange(ctx, lavinmq.Exchange{Name: ex + "-2", Kind: long})
		}},
		{"binding queue", "binding queue", func() error {
			return c.BindQueue(ctx, lavinmq.Binding{Queue: long, Exchange: ex, Key: "k"})
		}},
		{"binding exchange", "binding exchange", func() error {
			return c.BindQueue(ctx, lavinmq.Binding{Queue: q, Exchange: long, Key: "k"})
		}},
		{"binding key", "binding key", func() error {
			return c.BindQueue(ctx, lavinmq.Binding{Queue: q, Exchange: ex, Key: long})
		}},
		{"unbind key", "binding key", func() error {
			return c.UnbindQueue(ctx, lavinmq.Binding{Queue: q, Exchange: ex, Key: long})
		}},
		{"delete queue", "queue name", func() error { _, err := c.DeleteQueue(ctx, long); return err }},
		{"delete exchange", "exchange name", func() error { return c.DeleteExchange(ctx, long) }},
	}
	for _, tc := range cases {
		err := tc.call()
		if !errors.Is(err, lavinmq.ErrInvalidTopology) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s of 300 bytes: %v, want ErrInvalidTopology naming %q", tc.name, err, tc.field)
		}
		if strings.Contains(err.Error(), long) {
			t.Errorf("%s: the error repeats the 300-byte value", tc.name)
		}
	}
	// A short declaration on the same client still works: the connection is
	// the one we started with.
	if err := c.BindQueue(ctx, lavinmq.Binding{Queue: q, Exchange: ex, Key: "k"}); err != nil {
		t.Fatalf("bind after the refused calls: %v", err)
	}
	time.Sleep(300 * time.Millisecond) // a frame error would close the connection by now
	if _, disc, _ := ev.counts(); disc != 0 {
		t.Fatalf("%d disconnects after refused declarations, want 0", disc)
	}
	if g := clientConn(t, c).Generation(); g != gen {
		t.Fatalf("connection generation %d, want %d (unchanged)", g, gen)
	}
	// Nothing refused was recorded: a reconnect replays the three good
	// declarations without a single topology error.
	reconnectAfter(t, c, ev, func() { testbroker.CloseAllConnections(t) })
	if errs := te.all(); len(errs) != 0 {
		t.Fatalf("replay after the refused calls reported %d errors, first %v", len(errs), errs[0])
	}
	t.Logf("%d refused calls; disconnects before the forced reconnect 0, generation %d unchanged", len(cases), gen)
}

// TestTopologyRejectedArgsLeakNoChannels: declarations whose args amqp091-go
// cannot encode (a uint, a []string, nested in a table or an array) are
// refused before a channel is opened, so 100 of them leave the connection's
// channel count (read from the broker) where it was, and nothing is recorded.
func TestTopologyRejectedArgsLeakNoChannels(t *testing.T) {
	te := &topoErrors{}
	name := testbroker.Name(t, "conn")
	c, ev := newClient(t, testbroker.URL(t), lavinmq.WithHooks(te), lavinmq.WithConnectionName(name))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	gen := clientConn(t, c).Generation()
	ex := testbroker.Name(t, "ex")
	if err := c.DeclareExchange(ctx, lavinmq.Exchange{Name: ex, Kind: "headers", AutoDelete: true}); err != nil {
		t.Fatal(err)
	}
	before := brokerChannels(t, name)
	bad := []amqp.Table{
		{"x-max-length": uint(10)},
		{"tags": []string{"a", "b"}},
		{"outer": amqp.Table{"inner": uint64(1)}},
		{"list": []any{"ok", []any{struct{}{}}}},
		{"map": map[string]any{"k": "v"}}, // a plain map is not an amqp.Table
	}
	q := testbroker.Name(t, "q")
	var wrong []error // errors other than ErrInvalidTopology naming the args
	for i := range 100 {
		args := bad[i%len(bad)]
		var err error
		switch i % 3 {
		case 0:
			_, err = c.DeclareQueue(ctx, lavinmq.Queue{Name: q, Args: args})
		case 1:
			err = c.DeclareExchange(ctx, lavinmq.Exchange{Name: ex + "-x", Kind: "direct", Args: args})
		case 2:
			err = c.BindQueue(ctx, lavinmq.Binding{Queue: q, Exchange: ex, Args: args})
		}
		if !errors.Is(err, lavinmq.ErrInvalidTopology) || !strings.Contains(err.Error(), "args") {
			wrong = append(wrong, err)
		}
	}
	after := brokerChannels(t, name)
	t.Logf("channels of the client's connection on the broker: before %d, after 100 rejected declarations %d", before, after)
	if before < 0 || after != before {
		t.Fatalf("channels before %d, after %d: want equal and listed", before, after)
	}
	if len(wrong) > 0 {
		t.Fatalf("%d of 100 calls did not fail with ErrInvalidTopology naming the args; first: %v", len(wrong), wrong[0])
	}
	if _, disc, _ := ev.counts(); disc != 0 || clientConn(t, c).Generation() != gen {
		t.Fatalf("rejected declarations cost the connection (%d disconnects)", disc)
	}
	if n := testbroker.QueueLen(t, q); n != -1 {
		t.Fatalf("queue %s exists after only rejected declarations", q)
	}
	reconnectAfter(t, c, ev, func() { testbroker.CloseAllConnections(t) })
	if errs := te.all(); len(errs) != 0 {
		t.Fatalf("replay reported %d errors (a rejected declaration was recorded): first %v", len(errs), errs[0])
	}
}

// TestTopologyOversizedArgsRefusedBeforeSending: args that encode to more than
// the connection's frame_max would make the broker close the connection with
// a frame error; they are refused at the call. At the exact limit (payload =
// frame_max - 8, RabbitMQ's default frame_max 131072) the declaration goes
// through: the size is computed exactly, neither over nor under.
func TestTopologyOversizedArgsRefusedBeforeSending(t *testing.T) {
	c, ev := newClient(t, testbroker.URL(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	gen := clientConn(t, c).Generation()
	q := testbroker.Name(t, "q")
	_, err := c.DeclareQueue(ctx, lavinmq.Queue{Name: q, AutoDelete: true, Args: amqp.Table{"blob": strings.Repeat("x", 200_000)}})
	if !errors.Is(err, lavinmq.ErrInvalidTopology) || !strings.Contains(err.Error(), "frame") {
		t.Fatalf("declare with 200 kB of args = %v, want ErrInvalidTopology about the frame size", err)
	}
	// queue.declare payload: class, method, reserved (2 each), queue
	// shortstr, flags (1), table length (4), key shortstr, 'S', length (4), value.
	const payloadMax = 131072 - 8
	fixed := 2 + 2 + 2 + (1 + len(q)) + 1 + 4 + (1 + len("blob")) + 1 + 4
	exact := lavinmq.Queue{Name: q, AutoDelete: true, Args: amqp.Table{"blob": strings.Repeat("x", payloadMax-fixed)}}
	over := lavinmq.Queue{Name: q, AutoDelete: true, Args: amqp.Table{"blob": strings.Repeat("x", payloadMax-fixed+1)}}
	if _, err := c.DeclareQueue(ctx, over); !errors.Is(err, lavinmq.ErrInvalidTopology) {
		t.Fatalf("declare one byte over the frame = %v, want ErrInvalidTopology", err)
	}
	if _, err := c.DeclareQueue(ctx, exact); err != nil {
		t.Fatalf("declare of exactly frame_max-8 bytes: %v", err)
	}
	if _, err := c.DeleteQueue(ctx, q); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if _, disc, _ := ev.counts(); disc != 0 || clientConn(t, c).Generation() != gen {
		t.Fatalf("oversized args cost the connection (%d disconnects)", disc)
	}
}
