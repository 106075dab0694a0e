// Package testbroker gives integration tests the local broker that `make test`
// starts (RabbitMQ by default, LavinMQ with BROKER=lavinmq), an in-process
// toxiproxy in front of it, and one driver of the broker for both kinds
// (force-close connections, restart, kill: broker.go).
//
// Tests that need the broker call URL, which fails the test loudly when
// LAVINMQ_TEST_URL is not set: integration tests never skip silently.
package testbroker

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// EnvURL names the variable that holds the broker URL.
const EnvURL = "LAVINMQ_TEST_URL"

// URL returns the broker URL or fails the test.
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvURL)
	if u == "" {
		t.Fatalf("%s is not set: integration tests need the local broker; run `make test` (it starts one) "+
			"or `scripts/broker.sh start` and export %s=$(scripts/broker.sh url)", EnvURL, EnvURL)
	}
	return u
}

// HostPort returns the broker's host:port.
func HostPort(t testing.TB) string {
	t.Helper()
	u, err := url.Parse(URL(t))
	if err != nil {
		t.Fatalf("parse %s: %v", EnvURL, err)
	}
	return u.Host
}

// WithHost returns the broker URL with its host:port replaced by hostport.
func WithHost(t testing.TB, hostport string) string {
	t.Helper()
	u, err := url.Parse(URL(t))
	if err != nil {
		t.Fatalf("parse %s: %v", EnvURL, err)
	}
	u.Host = hostport
	return u.String()
}

var counter atomic.Int64

// Name returns a queue or exchange name unique to this test run.
func Name(t testing.TB, prefix string) string {
	n := strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	return fmt.Sprintf("lmqgo-%s-%s-%d-%d", prefix, n, os.Getpid(), counter.Add(1))
}

// Root is the repository root (the folder that holds go.mod).
func Root(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
}

// Raw opens a plain amqp091-go connection and channel for the test to inspect
// the broker (count, get, purge). Both are closed when the test ends.
func Raw(t testing.TB) *amqp.Channel {
	t.Helper()
	conn, err := amqp.Dial(URL(t))
	if err != nil {
		t.Fatalf("raw dial: %v", err)
	}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		t.Fatalf("raw channel: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return ch
}

// QueueLen returns the number of ready messages in queue, or -1 if it does not exist.
func QueueLen(t testing.TB, queue string) int {
	t.Helper()
	conn, err := amqp.Dial(URL(t))
	if err != nil {
		t.Fatalf("raw dial: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("raw channel: %v", err)
	}
	q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
	if err != nil {
		return -1
	}
	return q.Messages
}

// Eventually polls cond every 10ms until it holds or timeout passes, then fails the test.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
