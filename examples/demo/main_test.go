package main

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestDemoWithoutRestart runs the demo briefly without restarting the broker
// (make demo, run by CI, does the restart).
func TestDemoWithoutRestart(t *testing.T) {
	if code := run(testbroker.URL(t), 3*time.Second, 500, 0, ""); code != 0 {
		t.Fatalf("demo exited with %d", code)
	}
}
