//go:build chaos

package consumer_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
)

// TestChaosStreamResumesAcrossForcedCloseAndBrokerRestart: a 10 000-message
// stream consumed from "first" through a forced connection close and then a
// broker restart (scripts/broker.sh restart, which restarts the node of
// BROKER_NAME: hence the chaos tag). Every offset is handled, at most the
// prefetch count twice, and a consumer from the stored offset starts exactly there.
func TestChaosStreamResumesAcrossForcedCloseAndBrokerRestart(t *testing.T) {
	url := testbroker.URL(t)
	q, last := consumeStreamAcross(t, url, 0, disruption{at: 3000, hold: true, do: testbroker.CloseAllConnections}, disruption{at: 6000, hold: true, do: func(t testing.TB) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		t0 := time.Now()
		out, err := exec.CommandContext(ctx, filepath.Join(testbroker.Root(t), "scripts", "broker.sh"), "restart").CombinedOutput()
		if err != nil {
			t.Fatalf("broker.sh restart: %v\n%s", err, out)
		}
		t.Logf("broker restarted in %v", time.Since(t0).Round(time.Millisecond))
	}})
	streamStartsAt(t, url, q, last-4999, last-4999)
}
