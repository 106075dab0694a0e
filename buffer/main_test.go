package buffer

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind (a parked
// Block pusher, a consumer, a stress worker).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
