package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
	"github.com/c3ecadf2/lavinmq-go/lavinmq"
)

func TestMain(m *testing.M) {
	if os.Getenv("SHUTDOWN_EXAMPLE_CHILD") == "1" {
		main() // the test binary re-executed as the example program
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

var closedLine = regexp.MustCompile(`^closed: accepted=(\d+) confirmed=(\d+) dropped=(\d+) pending=(\d+)$`)

// TestSIGTERMFlushes runs the example as its own process, lets it publish
// for a while, sends it SIGTERM, and checks that it exits 0 after Close
// confirmed every accepted message: the queue holds exactly that many.
func TestSIGTERMFlushes(t *testing.T) {
	url := testbroker.URL(t)
	x, q := testbroker.Name(t, "x"), testbroker.Name(t, "q")
	t.Cleanup(func() { cleanup(t, url, x, q) })
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SHUTDOWN_EXAMPLE_CHILD=1", "LAVINMQ_URL="+url, "SHUTDOWN_EXCHANGE="+x, "SHUTDOWN_QUEUE="+q)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var out []string
	next := func() string {
		select {
		case l, ok := <-lines:
			if !ok {
				return ""
			}
			out = append(out, l)
			return l
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatalf("no output for 30s; so far %q, stderr %s", out, stderr.String())
			return ""
		}
	}
	if l := next(); !strings.HasPrefix(l, "publishing") {
		_ = cmd.Process.Kill()
		t.Fatalf("first line %q, stderr %s", l, stderr.String())
	}
	time.Sleep(time.Second) // let it publish a few thousand messages
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for l := next(); l != ""; l = next() {
	}
	err = cmd.Wait()
	t.Logf("output:\n%s", strings.Join(out, "\n"))
	if err != nil {
		t.Fatalf("exited with %v after SIGTERM; stderr %s", err, stderr.String())
	}
	if len(out) < 3 || !strings.HasPrefix(out[1], "signal received") {
		t.Fatalf("output %q: want the signal and close lines", out)
	}
	m := closedLine.FindStringSubmatch(out[len(out)-1])
	if m == nil {
		t.Fatalf("last line %q is not the close report", out[len(out)-1])
	}
	accepted, _ := strconv.Atoi(m[1])
	if accepted < 100 || m[1] != m[2] || m[3] != "0" || m[4] != "0" {
		t.Fatalf("close report %q: want at least 100 accepted, all confirmed, none dropped or pending", m[0])
	}
	if n := testbroker.QueueLen(t, q); n != accepted {
		t.Fatalf("queue holds %d messages, the example confirmed %d", n, accepted)
	}
}

func cleanup(t *testing.T, url, x, q string) {
	c, err := lavinmq.New(url)
	if err != nil {
		t.Error(err)
		return
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.DeleteQueue(ctx, q); err != nil {
		t.Error(fmt.Errorf("delete queue: %w", err))
	}
	if err := c.DeleteExchange(ctx, x); err != nil {
		t.Error(fmt.Errorf("delete exchange: %w", err))
	}
}
