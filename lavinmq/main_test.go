package lavinmq_test

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// toxiproxy's in-process proxies end their link goroutines asynchronously after Stop.
		goleak.IgnoreTopFunction("github.com/Shopify/toxiproxy/v2.(*ToxicLink).read"),
	)
}
