package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestTracingReportFromBenchOutput: runs are told apart at each "off" line,
// and the table gives the medians and the median of the per-run ratios.
func TestTracingReportFromBenchOutput(t *testing.T) {
	text := `goos: linux
BenchmarkPublishConsume/off-2   20000   78578 ns/op   12000 msgs/s   3513 B/op   80 allocs/op
BenchmarkPublishConsume/on-2    20000  113882 ns/op    9000 msgs/s  17648 B/op  164 allocs/op
PASS
BenchmarkPublishConsume/off-2   20000   78578 ns/op   10000 msgs/s   3513 B/op   80 allocs/op
BenchmarkPublishConsume/on-2    20000  113882 ns/op    8000 msgs/s  17648 B/op  165 allocs/op
BenchmarkPublishConsume/off-2   20000   78578 ns/op   14000 msgs/s   3513 B/op   80 allocs/op
BenchmarkPublishConsume/on-2    20000  113882 ns/op    7000 msgs/s  17648 B/op  164 allocs/op
`
	runs := parseTracingBench(text)
	if len(runs) != 3 || runs[1].Rate["on"] != 8000 || runs[2].Allocs["on"] != 164 {
		t.Fatalf("runs %+v", runs)
	}
	var b strings.Builder
	writeTracing(func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }, runs)
	out := b.String()
	for _, want := range []string{"| off | 12000 | 10000–14000 | 3513 | 80 |", "| on | 8000 | 7000–9000 | 17648 | 165 |", "on ÷ off, median of the runs' ratios: **0.75×**"} {
		if !strings.Contains(out, want) {
			t.Fatalf("report lacks %q:\n%s", want, out)
		}
	}
}
