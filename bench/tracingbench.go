package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// tracingRun is one run of BenchmarkPublishConsume: tracing off, then on.
type tracingRun struct {
	Rate   map[string]float64 // msgs/s by "off" / "on"
	BOp    map[string]float64
	Allocs map[string]float64
}

// runTracingBench runs the tracing package's publish + consume benchmark
// against url, tracing off and on in each run (the two alternate), several
// runs, and keeps the raw output for the report.
func runTracingBench(out, url string, quick bool) error {
	n, runs := "20000x", 5
	if quick {
		n, runs = "5000x", 3
	}
	var all []byte
	for range runs {
		cmd := exec.Command("go", "test", "-run", "^$", "-bench", "PublishConsume", "-benchtime", n, "-count", "1", "./tracing/")
		cmd.Env = append(os.Environ(), "LAVINMQ_TEST_URL="+url)
		cmd.Stderr = os.Stderr
		b, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("go test -bench PublishConsume ./tracing/: %w", err)
		}
		all = append(all, b...)
	}
	return os.WriteFile(filepath.Join(out, "tracing-bench.txt"), all, 0o644)
}

// parseTracingBench reads the runs from `go test -bench` output: a run
// starts at each "off" line.
func parseTracingBench(text string) []tracingRun {
	var runs []tracingRun
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "BenchmarkPublishConsume/") {
			continue
		}
		mode := strings.TrimPrefix(f[0], "BenchmarkPublishConsume/")
		if i := strings.LastIndexByte(mode, '-'); i > 0 {
			mode = mode[:i]
		}
		if mode == "off" || len(runs) == 0 {
			runs = append(runs, tracingRun{Rate: map[string]float64{}, BOp: map[string]float64{}, Allocs: map[string]float64{}})
		}
		r := runs[len(runs)-1]
		for i := 2; i+1 < len(f); i++ {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "msgs/s":
				r.Rate[mode] = v
			case "B/op":
				r.BOp[mode] = v
			case "allocs/op":
				r.Allocs[mode] = v
			}
		}
	}
	return runs
}

func writeTracing(w writer, runs []tracingRun) {
	w("### Tracing cost (`go test -bench PublishConsume ./tracing/`)\n\n")
	if len(runs) == 0 {
		w("Not measured yet: `bench/run.sh` writes `bench/results/tracing-bench.txt`.\n\n")
		return
	}
	w("Publish and consume of 256-byte messages on one client (Confirm mode, prefetch 500), tracing off and on in each\n")
	w("run, %d runs (`bench/results/tracing-bench.txt`). On: a producer span per message (Publish to confirm, with its\n", len(runs))
	w("events) and a consumer span per handler call, all sampled, through a batch span processor to an exporter that\n")
	w("discards them: the cost of making the spans and of the trace headers, not of shipping them. Unsampled: the same\n")
	w("tracer with a provider that samples nothing (the trace context is still propagated). Allocations are of the whole\n")
	w("path (publish, broker round trip, delivery, ack) per message.\n\n")
	w("| tracing | msgs/s (median) | range | B/op | allocs/op |\n|---|---|---|---|---|\n")
	for _, mode := range []string{"off", "on", "unsampled"} {
		var rates []float64
		var bop, allocs float64
		for _, r := range runs {
			if v, ok := r.Rate[mode]; ok {
				rates = append(rates, v)
			}
			bop, allocs = max(bop, r.BOp[mode]), max(allocs, r.Allocs[mode])
		}
		if len(rates) == 0 {
			continue // an older run without this mode
		}
		lo, hi := 0.0, 0.0
		for i, v := range rates {
			if i == 0 || v < lo {
				lo = v
			}
			hi = max(hi, v)
		}
		w("| %s | %.0f | %.0f–%.0f | %.0f | %.0f |\n", mode, median(rates), lo, hi, bop, allocs)
	}
	for _, mode := range []string{"on", "unsampled"} {
		var ratios []float64
		for _, r := range runs {
			if r.Rate["off"] > 0 && r.Rate[mode] > 0 {
				ratios = append(ratios, r.Rate[mode]/r.Rate["off"])
			}
		}
		if len(ratios) > 0 {
			w("%s ÷ off, median of the runs' ratios: **%.2f×**. ", mode, median(ratios))
		}
	}
	w("\n\n")
}
