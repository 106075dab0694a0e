package main

import (
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConsumerExampleSurvivesPanic(t *testing.T) {
	q := testbroker.Name(t, "consumer")
	defer func() {
		ch := testbroker.Raw(t)
		_, _ = ch.QueueDelete(q, false, false, false)
	}()
	var out strings.Builder
	if err := run(testbroker.URL(t), q, 200, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "handled=200 delivered=201 acked=200 requeued=1 panics=1") {
		t.Fatalf("unexpected summary:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "cannot handle job 100") {
		t.Fatalf("the panic was not logged:\n%s", out.String())
	}
}
