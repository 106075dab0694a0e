package testbroker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Kind names a broker product.
type Kind string

// The brokers the suite runs against.
const (
	RabbitMQ Kind = "rabbitmq" // scripts/broker.sh, the default
	LavinMQ  Kind = "lavinmq"  // scripts/lavinmq.sh
)

// EnvBroker names the variable that says which broker LAVINMQ_TEST_URL is
// (`make test` sets it from BROKER); unset means RabbitMQ.
const EnvBroker = "LAVINMQ_TEST_BROKER"

// Broker returns the kind of the broker under test, or fails the test when
// LAVINMQ_TEST_BROKER holds an unknown name.
func Broker(t testing.TB) Kind {
	t.Helper()
	switch k := Kind(os.Getenv(EnvBroker)); k {
	case "", RabbitMQ:
		return RabbitMQ
	case LavinMQ:
		return LavinMQ
	default:
		t.Fatalf("%s=%q: want %q or %q", EnvBroker, k, RabbitMQ, LavinMQ)
		return ""
	}
}

// RequireRabbitMQ skips the test on LavinMQ, naming why it needs RabbitMQ.
// It never skips on RabbitMQ, the default broker.
func RequireRabbitMQ(t testing.TB, why string) {
	t.Helper()
	if k := Broker(t); k != RabbitMQ {
		t.Skipf("RabbitMQ only, skipped on %s: %s", k, why)
	}
}

// ScriptName is the script that manages the broker under test: broker.sh or lavinmq.sh.
func ScriptName(t testing.TB) string {
	t.Helper()
	if Broker(t) == LavinMQ {
		return "lavinmq.sh"
	}
	return "broker.sh"
}

// TryScript runs the broker's script (ScriptName) with args from the
// repository root and returns its combined output and how long it took.
func TryScript(t testing.TB, timeout time.Duration, args ...string) (string, time.Duration, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	root := Root(t)
	cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", ScriptName(t)), args...)
	cmd.Dir = root
	cmd.WaitDelay = 5 * time.Second
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	return string(out), time.Since(t0), err
}

// Script is TryScript that fails the test on an error.
func Script(t testing.TB, timeout time.Duration, args ...string) (string, time.Duration) {
	t.Helper()
	out, d, err := TryScript(t, timeout, args...)
	if err != nil {
		t.Fatalf("scripts/%s %v: %v\n%s", ScriptName(t), args, err, out)
	}
	return out, d
}

// RequireManaged fails unless the broker's script (with the BROKER_NAME /
// BROKER_PORT or LAVINMQ_NAME / LAVINMQ_PORT of the environment) manages the
// running broker of LAVINMQ_TEST_URL: restarting another one would be wrong twice over.
func RequireManaged(t testing.TB) {
	t.Helper()
	out, _ := Script(t, 30*time.Second, "url")
	u, err := url.Parse(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("scripts/%s url printed %q: %v", ScriptName(t), out, err)
	}
	if hp := HostPort(t); hp != u.Host {
		t.Fatalf("%s points at %s but scripts/%s manages the broker at %s: export the variables of the "+
			"broker under test (make chaos does)", EnvURL, hp, ScriptName(t), u.Host)
	}
	if out, _, err := TryScript(t, 30*time.Second, "status"); err != nil {
		t.Fatalf("scripts/%s status: the broker is not running: %v\n%s", ScriptName(t), err, out)
	}
}

// Restart stops the broker cleanly and starts it again (data kept); it returns how long that took.
func Restart(t testing.TB) time.Duration {
	t.Helper()
	_, d := Script(t, 3*time.Minute, "restart")
	return d
}

// Kill SIGKILLs the broker (a crash); Start brings it back.
func Kill(t testing.TB) time.Duration {
	t.Helper()
	_, d := Script(t, time.Minute, "kill")
	return d
}

// Start starts the broker (a no-op when it runs); it returns how long that took.
func Start(t testing.TB) time.Duration {
	t.Helper()
	_, d := Script(t, 3*time.Minute, "start")
	return d
}

// EnsureUpAtEnd starts the broker again at the end of the test if a failure left it down.
func EnsureUpAtEnd(t testing.TB) {
	t.Cleanup(func() {
		if _, _, err := TryScript(t, 30*time.Second, "status"); err == nil {
			return
		}
		t.Logf("the broker is down at the end of the test: starting it")
		if out, _, err := TryScript(t, 2*time.Minute, "start"); err != nil {
			t.Errorf("scripts/%s start: %v\n%s", ScriptName(t), err, out)
		}
	})
}

// Ctl runs rabbitmqctl against the local RabbitMQ node through
// scripts/broker.sh and returns its output. LavinMQ has no rabbitmqctl: there
// the test is skipped with the command it needed (see RequireRabbitMQ).
func Ctl(t testing.TB, args ...string) string {
	t.Helper()
	RequireRabbitMQ(t, fmt.Sprintf("rabbitmqctl %s", strings.Join(args, " ")))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(Root(t), "scripts", "broker.sh"), append([]string{"ctl"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("rabbitmqctl %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// CloseAllConnections makes the broker close every client connection
// (connection.close 320 CONNECTION_FORCED): rabbitmqctl close_all_connections
// on RabbitMQ, DELETE /api/connections/{name} for each one on LavinMQ.
func CloseAllConnections(t testing.TB) {
	t.Helper()
	if Broker(t) == RabbitMQ {
		Ctl(t, "close_all_connections", "lavinmq-go test")
		return
	}
	Script(t, time.Minute, "close-conns")
}

// Connections returns the broker's description of every client connection,
// client properties (and so connection names) included: rabbitmqctl
// list_connections client_properties on RabbitMQ, GET /api/connections on
// LavinMQ. Search it with strings.Contains.
func Connections(t testing.TB) string {
	t.Helper()
	if Broker(t) == RabbitMQ {
		return Ctl(t, "list_connections", "client_properties")
	}
	return string(HTTPAPI(t, http.MethodGet, "/api/connections"))
}

// HTTPAPI calls LavinMQ's HTTP API (scripts/lavinmq.sh http-url, user guest)
// and returns the body; a status other than 2xx fails the test.
func HTTPAPI(t testing.TB, method, path string) []byte {
	t.Helper()
	if Broker(t) != LavinMQ {
		t.Fatalf("HTTPAPI %s %s: the RabbitMQ node runs without the management plugin", method, path)
	}
	base, _ := Script(t, 30*time.Second, "http-url")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSpace(base)+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("guest", "guest")
	// No keep-alive: an idle connection's goroutines would outlive the test (goleak).
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("LavinMQ HTTP API %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode/100 != 2 {
		err = errors.New(resp.Status)
	}
	if err != nil {
		t.Fatalf("LavinMQ HTTP API %s %s: %v\n%s", method, path, err, body)
	}
	return body
}

// lavinConnInfo is what the tests read of a LavinMQ connection.
type lavinConnInfo struct {
	Channels         int  `json:"channels"`
	SSL              bool `json:"ssl"`
	ClientProperties struct {
		Name string `json:"connection_name"`
	} `json:"client_properties"`
}

// lavinConn finds the connection named name in LavinMQ's /api/connections.
func lavinConn(t testing.TB, name string) (lavinConnInfo, bool) {
	t.Helper()
	var conns []lavinConnInfo
	if err := json.Unmarshal(HTTPAPI(t, http.MethodGet, "/api/connections"), &conns); err != nil {
		t.Fatalf("LavinMQ /api/connections: %v", err)
	}
	for _, c := range conns {
		if c.ClientProperties.Name == name {
			return c, true
		}
	}
	return lavinConnInfo{}, false
}

// ConnChannels returns how many channels the connection named name
// (lavinmq.WithConnectionName) has open on the broker, or -1 when the broker
// does not list it.
func ConnChannels(t testing.TB, name string) int {
	t.Helper()
	if Broker(t) == LavinMQ {
		c, ok := lavinConn(t, name)
		if !ok {
			return -1
		}
		return c.Channels
	}
	out := Ctl(t, "list_connections", "channels", "client_properties", "--no-table-headers", "-q")
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, `"connection_name","`+name+`"`) {
			continue
		}
		n, err := strconv.Atoi(strings.Fields(line)[0])
		if err != nil {
			t.Fatalf("parse channels in %q: %v", line, err)
		}
		return n
	}
	return -1
}

// ConnTLS returns the broker's TLS view of the connection named name in
// rabbitmqctl's list_connections columns "ssl peer_cert_subject": "true
// CN=..." or "false"; ok is false when the broker does not list it. LavinMQ
// shows only ssl (it never asks for a client certificate), so its row has no
// subject.
func ConnTLS(t testing.TB, name string) (row string, ok bool) {
	t.Helper()
	if Broker(t) == LavinMQ {
		c, ok := lavinConn(t, name)
		if !ok {
			return "", false
		}
		return strconv.FormatBool(c.SSL), true
	}
	for _, line := range strings.Split(Ctl(t, "-q", "list_connections", "client_properties", "ssl", "peer_cert_subject"), "\n") {
		if strings.Contains(line, name) {
			return strings.TrimSpace(line[strings.LastIndex(line, "]")+1:]), true
		}
	}
	return "", false
}
