package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

func TestQuickstartRuns(t *testing.T) {
	url := testbroker.URL(t)
	q := testbroker.Name(t, "quickstart")
	var out strings.Builder
	if err := run(url, q, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if n := strings.Count(out.String(), "received: hello"); n != 10 {
		t.Fatalf("printed %d messages, want 10:\n%s", n, out.String())
	}
	c, err := lavinmq.New(url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.DeleteQueue(ctx, q); err != nil {
		t.Fatal(err)
	}
}
