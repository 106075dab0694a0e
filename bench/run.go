package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// plan lists the samples of a run; burst jobs get their rate from the
// baseline (ten times the SDK's sustained Confirm rate).
func plan(quick bool) (jobs []job, samples int) {
	n, samples := 100_000, 5
	slowFor, timelineFor := 10*time.Second, 30*time.Second
	if quick {
		n, samples = 20_000, 3
		slowFor, timelineFor = 4*time.Second, 25*time.Second
	}
	add := func(j job, impls ...string) {
		for _, impl := range impls {
			j := j
			j.Impl = impl
			if impl == "raw-sync" {
				j.N = max(500, j.N/20) // one confirm round trip per message
			}
			jobs = append(jobs, j)
		}
	}
	add(job{Scenario: "baseline", Variant: "fire_and_forget 16B", Mode: "fire_and_forget", Size: 16, N: n, Goroutines: 1}, "sdk", "raw")
	add(job{Scenario: "baseline", Variant: "confirm 16B", Mode: "confirm", Size: 16, N: n, Goroutines: 1}, "sdk", "sdk-no-mandatory", "raw", "raw-sync")
	for _, s := range []struct {
		size int
		name string
		div  int
	}{{16, "16B", 1}, {1024, "1KiB", 1}, {16 << 10, "16KiB", 4}, {256 << 10, "256KiB", 40}} {
		add(job{Scenario: "payload", Variant: "confirm " + s.name, Mode: "confirm", Size: s.size, N: n / s.div, Goroutines: 1}, "sdk", "raw")
	}
	for _, g := range []int{1, 4, 16} {
		add(job{Scenario: "concurrency", Variant: fmt.Sprintf("confirm %d goroutines", g), Mode: "confirm", Size: 16, N: n, Goroutines: g}, "sdk", "raw")
	}
	add(job{Scenario: "consume", Variant: "prefetch 100, ack each", Size: 16, N: n}, "sdk", "raw")
	for _, p := range []string{"drop-oldest", "raise", "block"} {
		add(job{Scenario: "burst", Variant: "10x rate for 1s, " + p, Policy: p, Size: 16}, "sdk")
	}
	add(job{Scenario: "burst", Variant: "10x rate for 1s, raw", Size: 16}, "raw")
	add(job{Scenario: "slow", Variant: "2000 msg/s, consumer 1ms/msg", Size: 16, Rate: 2000, Duration: slowFor}, "sdk", "raw")
	add(job{Scenario: "timeline", Variant: "5000 msg/s confirm", Size: 16, Rate: 5000, Duration: timelineFor}, "sdk")
	add(job{Scenario: "timeline", Variant: "5000 msg/s confirm", Size: 16, Rate: 5000, Duration: 8 * time.Second}, "raw")
	return jobs, samples
}

// samplesFor: the timeline runs once; the slow burst and slow-consumer
// scenarios 3 times (1 in a quick run); the rest n times.
func samplesFor(j job, quick bool, n int) int {
	switch {
	case j.Scenario == "timeline":
		return 1
	case j.Scenario == "burst" || j.Scenario == "slow":
		if quick {
			return 1
		}
		return 3
	}
	return n
}

func runCmd(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	quick := fs.Bool("quick", false, "fewer messages and samples (under 5 minutes)")
	url := fs.String("url", os.Getenv("LAVINMQ_URL"), "broker URL")
	out := outFlag(fs)
	soak, spec := soakFlags(fs)
	_ = fs.Parse(args)
	if *url == "" {
		return fmt.Errorf("no broker URL: give -url or set LAVINMQ_URL (bench/run.sh does)")
	}
	if *soak {
		return runSoak(*url, *out, *spec)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	started := time.Now()
	fp := fingerprint(*url, *quick)
	if err := writeJSON(filepath.Join(*out, "fingerprint.json"), fp); err != nil {
		return err
	}
	jobs, n := plan(*quick)
	var results []result
	burstRate := 0
	for _, j := range jobs {
		if j.Scenario == "burst" {
			if burstRate == 0 {
				burstRate = 10 * int(aggregateOf(results, "baseline", "confirm 16B", "sdk").Mean)
			}
			j.Rate = burstRate
		}
		for s := range samplesFor(j, *quick, n) {
			j.Sample = s + 1
			r, err := runWorker(j, *url)
			if err != nil {
				return fmt.Errorf("%s/%s/%s sample %d: %w", j.Scenario, j.Variant, j.Impl, j.Sample, err)
			}
			fmt.Fprintf(os.Stderr, "[%5.0fs] %-12s %-32s %-8s #%d %10.0f msg/s  cpu %.2fs  rss %.0f MiB %s\n",
				time.Since(started).Seconds(), j.Scenario, j.Variant, j.Impl, j.Sample, r.MsgPerSec, r.CPUSeconds, r.MaxRSSMB, r.Note)
			results = append(results, r)
		}
	}
	if err := writeJSON(filepath.Join(*out, "bench.json"), results); err != nil {
		return err
	}
	if err := writeSummaryCSV(filepath.Join(*out, "bench.csv"), results); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "buffer microbenchmarks (go test -bench ./buffer/) ...")
	if err := runBufferBench(*out, *quick); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(*out, "seed.json"), measureSeed()); err != nil {
		return err
	}
	if err := plotAll(*out); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "done in %v; results in %s\n", time.Since(started).Round(time.Second), *out)
	return nil
}

// runWorker runs one sample in a child process and adds its CPU time and peak RSS.
func runWorker(j job, url string) (result, error) {
	spec, err := json.Marshal(j)
	if err != nil {
		return result{}, err
	}
	self, err := os.Executable()
	if err != nil {
		return result{}, err
	}
	cmd := exec.Command(self, "worker", "-url", url, "-job", string(spec))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return result{}, fmt.Errorf("%w: %s", err, stderr.String())
	}
	var r result
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		return result{}, fmt.Errorf("worker output: %w: %s", err, stdout.String())
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.CPUSeconds = time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime)).Seconds()
		r.MaxRSSMB = float64(ru.Maxrss) / 1024 // Linux reports KiB
	}
	return r, nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
