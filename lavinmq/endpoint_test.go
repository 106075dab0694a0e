package lavinmq_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

// TestEndpointHasNoCredentials: Endpoint is the host:port of the URL, before
// the first connection and while connected, never with the user or password.
func TestEndpointHasNoCredentials(t *testing.T) {
	url := testbroker.URL(t)
	want := testbroker.HostPort(t)
	c, err := lavinmq.New(url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	check := func(when string) {
		t.Helper()
		got := c.Endpoint()
		if got != want || strings.Contains(got, "@") {
			t.Fatalf("%s: Endpoint() = %q, want %q", when, got, want)
		}
	}
	check("before connecting")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	check("connected")
}
