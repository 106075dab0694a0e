package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// bufferRow is the median of one buffer benchmark for one implementation.
type bufferRow struct {
	Bench, Impl string
	NsOp        float64 // median ns/op
	MaxOverMed  float64 // slowest run / median
	AllocsOp    float64
	Runs        int
}

// runBufferBench runs the buffer package's benchmarks (ring, chan, go-diodes
// side by side) and keeps the raw output for the report.
func runBufferBench(out string, quick bool) error {
	benchtime, count := "1s", "5"
	if quick {
		benchtime, count = "200ms", "3"
	}
	cmd := exec.Command("go", "test", "-run", "^$", "-bench", ".", "-benchtime", benchtime, "-count", count, "./buffer/")
	cmd.Stderr = os.Stderr
	b, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("go test -bench ./buffer/: %w", err)
	}
	return os.WriteFile(filepath.Join(out, "buffer-bench.txt"), b, 0o644)
}

// parseBufferBench reads `go test -bench` output: lines like
// "BenchmarkSPSC/ring-2  1000000  12.5 ns/op  0 B/op  0 allocs/op".
func parseBufferBench(text string) []bufferRow {
	type acc struct {
		ns     []float64
		allocs float64
	}
	var order []string
	runs := map[string]*acc{}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			name = name[:i] // drop the GOMAXPROCS suffix
		}
		a := runs[name]
		if a == nil {
			a = &acc{}
			runs[name] = a
			order = append(order, name)
		}
		for i := 2; i+1 < len(f); i++ {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				a.ns = append(a.ns, v)
			case "allocs/op":
				a.allocs = max(a.allocs, v)
			}
		}
	}
	var rows []bufferRow
	for _, name := range order {
		a := runs[name]
		bench, impl, _ := strings.Cut(strings.TrimPrefix(name, "Benchmark"), "/")
		med := median(a.ns)
		worst := 0.0
		for _, v := range a.ns {
			worst = max(worst, v)
		}
		r := bufferRow{Bench: bench, Impl: impl, NsOp: med, AllocsOp: a.allocs, Runs: len(a.ns)}
		if med > 0 {
			r.MaxOverMed = worst / med
		}
		rows = append(rows, r)
	}
	return rows
}
