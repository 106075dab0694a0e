//go:build chaos

package chaos

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/c3ecadf2/lavinmq-go/internal/testbroker"
)

// Row is one line of the results table.
type Row struct {
	Broker           string            `json:"broker"` // rabbitmq or lavinmq (testbroker.Broker)
	Scenario         string            `json:"scenario"`
	Mode             string            `json:"mode"`
	Policy           string            `json:"policy"`
	Published        uint64            `json:"published"` // accepted by Publish
	Rejected         uint64            `json:"rejected"`  // Publish returned an error (e.g. buffer.ErrFull)
	Confirmed        uint64            `json:"confirmed"`
	Dropped          uint64            `json:"dropped"`
	DroppedBy        map[string]uint64 `json:"dropped_by"`
	Received         int               `json:"received"` // distinct
	Lost             int               `json:"lost"`
	Duplicates       int               `json:"duplicates"`
	MaxPublishCallMs float64           `json:"max_publish_call_ms"`
	MaxConfirmGapMs  float64           `json:"max_confirm_gap_ms"`
	Faults           int               `json:"faults"`
	RecoveryMs       []float64         `json:"recovery_ms"`
	RecoveryMaxMs    float64           `json:"recovery_max_ms"`
	DurationS        float64           `json:"duration_s"`
	Pass             bool              `json:"pass"`
	Notes            string            `json:"notes"`
	NotRun           string            `json:"not_run,omitempty"` // why the scenario cannot run on this broker
}

var results struct {
	mu   sync.Mutex
	rows []Row
}

// record adds a row to the results file and logs it.
func record(t *testing.T, r Row) {
	t.Helper()
	if r.DroppedBy == nil {
		r.DroppedBy = map[string]uint64{}
	}
	for _, ms := range r.RecoveryMs {
		r.RecoveryMaxMs = max(r.RecoveryMaxMs, ms)
	}
	r.Broker = string(testbroker.Broker(t))
	r.Pass = !t.Failed()
	t.Logf("ROW %s", rowString(r))
	results.mu.Lock()
	results.rows = append(results.rows, r)
	results.mu.Unlock()
}

// notOn skips the scenario on broker kind with the reason, and records a row
// that says so in the chaos table: a scenario is never skipped silently. It
// never skips on another broker.
func notOn(t *testing.T, kind testbroker.Kind, scenario, reason string) {
	t.Helper()
	if testbroker.Broker(t) != kind {
		return
	}
	results.mu.Lock()
	results.rows = append(results.rows, Row{Broker: string(kind), Scenario: scenario, DroppedBy: map[string]uint64{}, NotRun: reason})
	results.mu.Unlock()
	t.Skipf("scenario %s does not run on %s: %s", scenario, kind, reason)
}

func rowString(r Row) string {
	return fmt.Sprintf("broker=%s scenario=%s mode=%s policy=%s published=%d rejected=%d confirmed=%d dropped=%d (%s) "+
		"received=%d lost=%d duplicates=%d max_publish_call=%.1fms max_confirm_gap=%.0fms faults=%d recovery=%sms duration=%.1fs pass=%v notes=%q",
		r.Broker, r.Scenario, r.Mode, r.Policy, r.Published, r.Rejected, r.Confirmed, r.Dropped, droppedBy(r.DroppedBy),
		r.Received, r.Lost, r.Duplicates, r.MaxPublishCallMs, r.MaxConfirmGapMs, r.Faults, floats(r.RecoveryMs), r.DurationS, r.Pass, r.Notes)
}

func droppedBy(m map[string]uint64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
		}
	}
	return strings.Join(parts, ";")
}

func floats(fs []float64) string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = strconv.FormatFloat(f, 'f', 0, 64)
	}
	return strings.Join(parts, ";")
}

// repoRoot finds the folder holding go.mod, like testbroker.Root, without a testing.TB.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("go.mod not found above %s", dir)
		}
		dir = parent
	}
}

// writeResults writes the rows collected by the tests to
// bench/results/chaos.json and chaos.csv. The rows of the other broker already
// in chaos.json are kept (RabbitMQ's first), so runs against both brokers
// make one table. With no rows (a -run that selected no scenario) the files
// are left alone.
func writeResults() error {
	results.mu.Lock()
	rows := slices.Clone(results.rows)
	results.mu.Unlock()
	if len(rows) == 0 {
		return nil
	}
	root, err := repoRoot()
	if err != nil {
		return err
	}
	dir := filepath.Join(root, "bench", "results")
	rows = mergeOtherBroker(filepath.Join(dir, "chaos.json"), rows)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(rows, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "chaos.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	var b strings.Builder
	w := csv.NewWriter(&b)
	_ = w.Write([]string{"broker", "scenario", "mode", "policy", "published", "rejected", "confirmed", "dropped", "dropped_by",
		"received", "lost", "duplicates", "max_publish_call_ms", "max_confirm_gap_ms", "faults", "recovery_ms",
		"recovery_max_ms", "duration_s", "pass", "notes", "not_run"})
	for _, r := range rows {
		_ = w.Write([]string{r.Broker, r.Scenario, r.Mode, r.Policy, u(r.Published), u(r.Rejected), u(r.Confirmed), u(r.Dropped),
			droppedBy(r.DroppedBy), strconv.Itoa(r.Received), strconv.Itoa(r.Lost), strconv.Itoa(r.Duplicates),
			f1(r.MaxPublishCallMs), f1(r.MaxConfirmGapMs), strconv.Itoa(r.Faults), floats(r.RecoveryMs),
			f1(r.RecoveryMaxMs), f1(r.DurationS), strconv.FormatBool(r.Pass), r.Notes, r.NotRun})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "chaos.csv"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	fmt.Printf("chaos: %d rows written to %s/chaos.{json,csv}\n", len(rows), dir)
	return nil
}

// mergeOtherBroker returns the rows of path (a previous chaos.json) whose
// broker is not the one of rows, with rows after or before them so that
// RabbitMQ's rows come first. Rows without a broker are RabbitMQ's (files
// written before the column existed). A missing or unreadable file adds nothing.
func mergeOtherBroker(path string, rows []Row) []Row {
	var old []Row
	if b, err := os.ReadFile(path); err != nil || json.Unmarshal(b, &old) != nil {
		return rows
	}
	this := rows[0].Broker
	var other []Row
	for _, r := range old {
		if r.Broker == "" {
			r.Broker = string(testbroker.RabbitMQ)
		}
		if r.Broker != this {
			other = append(other, r)
		}
	}
	if this == string(testbroker.RabbitMQ) {
		return append(rows, other...)
	}
	return append(other, rows...)
}

func u(v uint64) string   { return strconv.FormatUint(v, 10) }
func f1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// runThenWrite runs the tests, then writes the results file, before goleak checks.
type runThenWrite struct{ m *testing.M }

func (r runThenWrite) Run() int {
	code := r.m.Run()
	if err := writeResults(); err != nil {
		fmt.Fprintf(os.Stderr, "chaos: writing results: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(runThenWrite{m}, testbroker.LeakOptions()...)
}
