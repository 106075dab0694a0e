//go:build chaos

package consumer_test

import (
	"testing"
	"time"

	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
)

// TestChaosStreamResumesAcrossForcedCloseAndBrokerRestart: a 10 000-message
// stream consumed from "first" through a forced connection close and then a
// broker restart (through the broker's script: hence the chaos tag), on
// either broker. Every offset is handled, at most the prefetch count twice,
// and a consumer from the stored offset starts exactly there.
func TestChaosStreamResumesAcrossForcedCloseAndBrokerRestart(t *testing.T) {
	url := testbroker.URL(t)
	base := int64(0) // RabbitMQ numbers a stream's offsets from 0
	if testbroker.Broker(t) == testbroker.LavinMQ {
		base = 1 // LavinMQ from 1
	}
	q, last := consumeStreamAcross(t, url, base, disruption{at: 3000, hold: true, do: testbroker.CloseAllConnections}, disruption{at: 6000, hold: true, do: func(t testing.TB) {
		d := testbroker.Restart(t)
		t.Logf("broker restarted in %v", d.Round(time.Millisecond))
	}})
	streamStartsAt(t, url, q, last-4999, last-4999)
}
