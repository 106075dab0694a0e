package main

import (
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestTracingExamplePrintsOneMessageThroughAReconnect runs the example: it
// prints the caller's span, one producer span with a "sent" and a "re-sent
// after reconnect" event, one consumer span and the handler's own span, all
// in one trace.
func TestTracingExamplePrintsOneMessageThroughAReconnect(t *testing.T) {
	var out strings.Builder
	q := testbroker.Name(t, "tracing-example")
	if err := run(testbroker.URL(t), q, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	s := out.String()
	t.Logf("example output:\n%s", s)
	for _, want := range []string{
		`"Name": "checkout"`,
		`"Name": "publish ` + q + `"`,
		`"Name": "process ` + q + `"`,
		`"Name": "store order"`,
		`"Name": "sent"`,
		`"Name": "re-sent after reconnect"`,
	} {
		if n := strings.Count(s, want); n != 1 {
			t.Errorf("%s printed %d times, want once", want, n)
		}
	}
	if n := strings.Count(s, `"Value": "order-1001"`); n != 2 {
		t.Errorf("the message ID is on %d spans, want 2 (producer and consumer)", n)
	}
	if n := strings.Count(s, `"TraceID": `); n < 4 {
		t.Errorf("%d trace IDs printed, want the four spans'", n)
	}
}
