package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// plan lists the samples of a run; burst jobs get their rate from the
// baseline (ten times the SDK's sustained Confirm rate).
func plan(quick bool) (jobs []job, samples int) {
	n, samples := 100_000, 5
	slowFor, timelineFor := 10*time.Second, 30*time.Second
	latencySamples, latencyFor, outageSamples := 3, 5*time.Second, 3
	if quick {
		n, samples = 20_000, 3
		slowFor, timelineFor = 4*time.Second, 25*time.Second
		latencySamples, latencyFor, outageSamples = 1, 2*time.Second, 1
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
	add(job{Scenario: "baseline", Variant: "confirm 16B", Mode: "confirm", Size: 16, N: n, Goroutines: 1}, "sdk", "sdk-no-mandatory", "raw", "raw-sync",
		implAMQPRecovery, implGoRabbitMQ)
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
	add(job{Scenario: "consume", Variant: "prefetch 100, ack each", Size: 16, N: n}, "sdk", "raw", implAMQPRecovery, implGoRabbitMQ)
	// Open-loop latency at 25, 50 and 75 % of the raw Confirm maximum, which
	// the first job measures (runCmd sets the rates from it); the impls
	// alternate, sample by sample.
	jobs = append(jobs, job{Scenario: "latency", Variant: latencyMaxVariant, Impl: "raw", Mode: "confirm", Size: 16, Goroutines: 1,
		Duration: latencyFor, Sample: 1})
	for s := range latencySamples {
		for _, pct := range latencyPercents {
			for _, impl := range []string{"sdk", "raw", implAMQPRecovery, implGoRabbitMQ} {
				jobs = append(jobs, job{Scenario: "latency", Variant: latencyVariant(pct), Impl: impl, Mode: "confirm", Size: 16,
					Goroutines: 1, Percent: pct, Duration: latencyFor, Sample: s + 1})
			}
		}
	}
	for _, p := range []string{"drop-oldest", "raise", "block"} {
		add(job{Scenario: "burst", Variant: "10x rate for 1s, " + p, Policy: p, Size: 16}, "sdk")
	}
	add(job{Scenario: "burst", Variant: "10x rate for 1s, raw", Size: 16}, "raw")
	add(job{Scenario: "slow", Variant: "2000 msg/s, consumer 1ms/msg", Size: 16, Rate: 2000, Duration: slowFor}, "sdk", "raw")
	add(job{Scenario: "timeline", Variant: "5000 msg/s confirm", Size: 16, Rate: 5000, Duration: timelineFor}, "sdk")
	add(job{Scenario: "timeline", Variant: "5000 msg/s confirm", Size: 16, Rate: 5000, Duration: 8 * time.Second}, "raw")
	// Last: it crashes the broker. One sample per impl in a quick run, 3 (alternating) in a full one.
	for s := range outageSamples {
		for _, impl := range []string{"sdk", implAMQPRecovery, implGoRabbitMQ, implGoRabbitMQPlain} {
			jobs = append(jobs, job{Scenario: "outage", Variant: outageVariant, Impl: impl, Mode: "confirm", Size: 16,
				Rate: 2000, Duration: 15 * time.Second, Sample: s + 1})
		}
	}
	return jobs, samples
}

// latencyPercents are the offered rates of the latency scenario, in percent
// of the raw Confirm maximum of the same run.
var latencyPercents = []int{25, 50, 75}

// latencyMaxVariant is the raw Confirm loop run as fast as it goes for as
// long as the offered-rate runs: the maximum the percentages refer to.
const latencyMaxVariant = "raw max: confirm 16B, as fast as possible"

func latencyVariant(pct int) string { return fmt.Sprintf("confirm 16B at %d%% of raw max", pct) }

const outageVariant = "2000 msg/s for 15s, SIGKILL at 4s"

// samplesFor: a job that carries its sample number (latency, outage: the
// plan alternates the impls sample by sample) runs once, and so does the
// timeline; the burst and slow-consumer scenarios 3 times (1 in a quick
// run); the rest n times.
func samplesFor(j job, quick bool, n int) int {
	switch {
	case j.Sample > 0, j.Scenario == "timeline":
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
	quick := fs.Bool("quick", false, "fewer messages and samples (about 4 minutes per broker)")
	url := fs.String("url", os.Getenv("LAVINMQ_URL"), "broker URL")
	out := outFlag(fs)
	only := fs.String("only", "", "comma-separated scenarios to run (e.g. latency,outage); skips the buffer and seed measurements")
	impls := fs.String("impl", "", "with -only: comma-separated impls to run (e.g. sdk,go-rabbitmq)")
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
	if *only != "" {
		jobs = onlyJobs(jobs, strings.Split(*only, ","), *impls)
	}
	var results []result
	burstRate := 0
	for _, j := range jobs {
		if j.Scenario == "burst" {
			if burstRate == 0 {
				burstRate = 10 * int(aggregateOf(results, "baseline", "confirm 16B", "sdk").Mean)
			}
			j.Rate = burstRate
		}
		if j.Scenario == "latency" && j.Percent > 0 {
			j.Rate = offeredRate(results, j.Percent)
		}
		preset := j.Sample
		for s := range samplesFor(j, *quick, n) {
			j.Sample = s + 1
			if preset > 0 {
				j.Sample = preset
			}
			r, err := runWorker(j, *url)
			if err != nil {
				return fmt.Errorf("%s/%s/%s sample %d: %w", j.Scenario, j.Variant, j.Impl, j.Sample, err)
			}
			fmt.Fprintf(os.Stderr, "[%5.0fs] %-12s %-32s %-8s #%d %10.0f msg/s  cpu %.2fs  rss %.0f MiB %s%s\n",
				time.Since(started).Seconds(), j.Scenario, j.Variant, j.Impl, j.Sample, r.MsgPerSec, r.CPUSeconds, r.MaxRSSMB, r.Note, extraLine(r))
			results = append(results, r)
		}
	}
	if err := writeJSON(filepath.Join(*out, "bench.json"), results); err != nil {
		return err
	}
	if err := writeSummaryCSV(filepath.Join(*out, "bench.csv"), results); err != nil {
		return err
	}
	if *only != "" {
		fmt.Fprintf(os.Stderr, "done in %v; results in %s (only %s)\n", time.Since(started).Round(time.Second), *out, *only)
		return nil
	}
	fmt.Fprintln(os.Stderr, "buffer microbenchmarks (go test -bench ./buffer/) ...")
	if err := runBufferBench(*out, *quick); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "tracing cost (go test -bench PublishConsume ./tracing/) ...")
	if err := runTracingBench(*out, *url, *quick); err != nil {
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

// offeredRate is pct percent of the raw maximum the latency scenario measured
// first in this run (at least 1 msg/s).
func offeredRate(results []result, pct int) int {
	return max(1, int(aggregateOf(results, "latency", latencyMaxVariant, "raw").Mean*float64(pct)/100))
}

// onlyJobs keeps the jobs of the named scenarios (and of the named impls,
// when impls is not empty); burst keeps the SDK's Confirm baseline, whose
// rate sets the burst's.
func onlyJobs(jobs []job, names []string, impls string) []job {
	want, impl := map[string]bool{}, map[string]bool{}
	for _, n := range names {
		want[strings.TrimSpace(n)] = true
	}
	for _, n := range strings.Split(impls, ",") {
		impl[strings.TrimSpace(n)] = true
	}
	var out []job
	for _, j := range jobs {
		burstBase := want["burst"] && j.Scenario == "baseline" && j.Variant == "confirm 16B" && j.Impl == "sdk" // the burst's rate
		if (want[j.Scenario] || burstBase) && (impls == "" || impl[j.Impl]) {
			out = append(out, j)
		}
	}
	return out
}

// extraLine is the progress line's tail for the latency and outage scenarios.
func extraLine(r result) string {
	switch r.Job.Scenario {
	case "latency":
		if r.Job.Percent == 0 {
			return ""
		}
		return fmt.Sprintf(" offered %d msg/s: p50 %.2f p99 %.2f max %.2f ms", r.Job.Rate, r.LatP50, r.LatP99, r.LatMax)
	case "outage":
		return fmt.Sprintf(" longest hold %.1f ms, accepted %d, told failed %d, received %d, duplicates %d, lost %d, unsettled %d",
			r.MaxCallMs, r.Accepted, r.Failed, r.Received, r.Duplicates, r.Lost, r.Unsettled)
	}
	return ""
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
