package lavinmq_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

// TestTopologyValidate: the checks made before anything is sent, without a
// broker. A table that contains itself is refused (not a stack overflow).
func TestTopologyValidate(t *testing.T) {
	cyclic := amqp.Table{}
	cyclic["self"] = cyclic
	deep := amqp.Table{"v": 1}
	for range 40 {
		deep = amqp.Table{"t": deep}
	}
	n255, n256 := strings.Repeat("a", 255), strings.Repeat("a", 256)
	good := amqp.Table{"s": "x", "i": 1, "i64": int64(2), "f": 1.5, "b": true, "t": time.Now(), "x": []byte{1},
		"a": []any{"x", int32(1), amqp.Table{"k": nil}}, "d": amqp.Decimal{Scale: 1, Value: 5}}
	cases := []struct {
		name  string
		err   error
		field string // in the error; "" when err is nil
	}{
		{"queue 255 bytes", lavinmq.Queue{Name: n255, Args: good}.Validate(), ""},
		{"server-named queue", lavinmq.Queue{}.Validate(), ""},
		{"queue 256 bytes", lavinmq.Queue{Name: n256}.Validate(), "queue name"},
		{"uint arg", lavinmq.Queue{Name: "q", Args: amqp.Table{"x": uint(1)}}.Validate(), "queue args"},
		{"[]string arg", lavinmq.Queue{Name: "q", Args: amqp.Table{"x": []string{"a"}}}.Validate(), "queue args"},
		{"nested bad arg", lavinmq.Queue{Name: "q", Args: amqp.Table{"o": amqp.Table{"i": []any{uint8(1), int8(2), uint64(3)}}}}.Validate(), "queue args"},
		{"arg key 256 bytes", lavinmq.Queue{Name: "q", Args: amqp.Table{n256: 1}}.Validate(), "queue args"},
		{"nested arg key 256 bytes", lavinmq.Queue{Name: "q", Args: amqp.Table{"o": []any{amqp.Table{n256: 1}}}}.Validate(), "queue args"},
		{"cyclic table", lavinmq.Queue{Name: "q", Args: cyclic}.Validate(), "queue args"},
		{"41 levels", lavinmq.Queue{Name: "q", Args: deep}.Validate(), "queue args"},
		{"exchange", lavinmq.Exchange{Name: n255, Kind: "topic", Args: good}.Validate(), ""},
		{"exchange without kind", lavinmq.Exchange{Name: "x"}.Validate(), "kind"},
		{"exchange kind 256 bytes", lavinmq.Exchange{Name: "x", Kind: n256}.Validate(), "exchange kind"},
		{"exchange name 256 bytes", lavinmq.Exchange{Name: n256, Kind: "direct"}.Validate(), "exchange name"},
		{"binding", lavinmq.Binding{Queue: "q", Exchange: "x", Key: n255, Args: good}.Validate(), ""},
		{"binding key 256 bytes", lavinmq.Binding{Queue: "q", Exchange: "x", Key: n256}.Validate(), "binding key"},
		{"binding args", lavinmq.Binding{Queue: "q", Exchange: "x", Args: amqp.Table{"m": map[string]any{}}}.Validate(), "binding args"},
	}
	for _, tc := range cases {
		switch {
		case tc.field == "" && tc.err != nil:
			t.Errorf("%s: %v, want nil", tc.name, tc.err)
		case tc.field != "" && (!errors.Is(tc.err, lavinmq.ErrInvalidTopology) || !strings.Contains(tc.err.Error(), tc.field)):
			t.Errorf("%s: %v, want ErrInvalidTopology naming %q", tc.name, tc.err, tc.field)
		}
	}
}
