package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// soakFlags adds the soak scenario's flags to fs (bench run -soak ...).
func soakFlags(fs *flag.FlagSet) (on *bool, spec *soakSpec) {
	spec = &soakSpec{}
	on = fs.Bool("soak", false, "run only the soak scenario (writes soak.json, soak.csv, soak.png); not part of the full or quick run")
	fs.DurationVar(&spec.Duration, "soak-duration", 10*time.Minute, "soak: how long to publish")
	fs.DurationVar(&spec.Restart, "soak-restart", 2*time.Minute, "soak: broker restart interval (0: none)")
	fs.DurationVar(&spec.Warmup, "soak-warmup", 0, "soak: samples before this are left out of the slope fit (0: 1.25 × the restart interval, or 1 min)")
	fs.IntVar(&spec.Rate, "soak-rate", 200, "soak: messages per second")
	fs.IntVar(&spec.MinSize, "soak-min-size", 1<<10, "soak: smallest body, bytes")
	fs.IntVar(&spec.MaxSize, "soak-max-size", 64<<10, "soak: largest body, bytes")
	fs.Uint64Var(&spec.Seed, "soak-seed", 1, "soak: seed of the body sizes")
	return on, spec
}

// check validates the spec and fills in the default warm-up.
func (s *soakSpec) check() error {
	switch {
	case s.Duration < 10*time.Second:
		return fmt.Errorf("soak: -soak-duration %v: want at least 10s", s.Duration)
	case s.Restart < 0:
		return fmt.Errorf("soak: -soak-restart %v: want 0 or more", s.Restart)
	case s.Rate < 1:
		return fmt.Errorf("soak: -soak-rate %d: want at least 1", s.Rate)
	case s.MinSize < 8 || s.MaxSize < s.MinSize:
		return fmt.Errorf("soak: sizes [%d, %d]: want 8 <= min <= max", s.MinSize, s.MaxSize)
	}
	if s.Warmup == 0 {
		s.Warmup = time.Minute
		if s.Restart > 0 {
			s.Warmup = s.Restart * 5 / 4 // past the first restart and its recovery
		}
	}
	if s.Warmup >= s.Duration {
		return fmt.Errorf("soak: warm-up %v leaves nothing of %v to fit", s.Warmup, s.Duration)
	}
	return nil
}

// runSoak runs the soak scenario in a worker process and writes
// soak.json, soak.csv (the samples) and soak.png to out. It fails, after
// writing them, when a message was lost or the run was not flat.
func runSoak(url, out string, spec soakSpec) error {
	if err := spec.check(); err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	fp := fingerprint(url, false)
	jspec, err := json.Marshal(job{Scenario: "soak", Impl: "sdk", Soak: &spec})
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "soak: %d msg/s, bodies %d-%d bytes (seed %d), %v, broker restart every %v, against %s\n",
		spec.Rate, spec.MinSize, spec.MaxSize, spec.Seed, spec.Duration, spec.Restart, fp.Broker)
	cmd := exec.Command(self, "worker", "-url", url, "-job", string(jspec))
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr // progress lines as they come
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("soak worker: %w", err)
	}
	var r soakResult
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		return fmt.Errorf("soak worker output: %w", err)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.MaxRSSMB = float64(ru.Maxrss) / 1024 // Linux reports KiB
	}
	r.Machine = fp
	r.Summary = summarize(r)
	if err := writeJSON(filepath.Join(out, "soak.json"), r); err != nil {
		return err
	}
	if err := writeSoakCSV(filepath.Join(out, "soak.csv"), r.Samples); err != nil {
		return err
	}
	if err := saveSoakPlot(r, filepath.Join(out, "soak.png")); err != nil {
		return err
	}
	s := r.Summary
	fmt.Fprintf(os.Stderr, "soak: accepted %d, confirmed %d, dropped %d, received %d, duplicates %d, lost %d; RSS %.1f → %.1f MiB, slope %+.3f MiB/min (steady %+.3f), goroutines %.0f → %.0f, slope %+.3f/min; results in %s\n",
		r.Accepted, r.Confirmed, r.Dropped, r.Received, r.Duplicates, r.Lost, s.RSSStart, s.RSSEnd, s.RSSSlope, s.SteadyRSSSlope, s.GoroutinesStart, s.GoroutinesEnd, s.GoroutineSlope, out)
	return soakVerdict(r)
}

// soakVerdict is nil when every message is accounted for and the run was flat.
func soakVerdict(r soakResult) error {
	var errs []error
	if r.Lost > 0 || r.Corrupt > 0 || r.Unexpected > 0 || r.DroppedAndReceived > 0 {
		errs = append(errs, fmt.Errorf("soak: lost %d, corrupt %d, unexpected %d, dropped yet received %d", r.Lost, r.Corrupt, r.Unexpected, r.DroppedAndReceived))
	}
	if r.Rejected > 0 {
		errs = append(errs, fmt.Errorf("soak: %d Publish calls refused", r.Rejected))
	}
	if !r.Summary.Flat {
		errs = append(errs, fmt.Errorf("soak: not flat: %s (steady slopes: RSS %+.3f MiB/min, %s %+.4f ± %.4f MiB/min; goroutines %.0f → %.0f)",
			strings.Join(notFlat(r.Summary), ", "), r.Summary.SteadyRSSSlope, r.Summary.HeapKind, r.Summary.SteadyJudgedSlope, r.Summary.SteadyJudgedSE2, r.Summary.GoroutinesStart, r.Summary.GoroutinesEnd))
	}
	if r.GoroutinesAfter > r.GoroutinesBefore {
		errs = append(errs, fmt.Errorf("soak: %d goroutines after Close, %d before the client", r.GoroutinesAfter, r.GoroutinesBefore))
	}
	return errors.Join(errs...)
}

// soakWorker is the worker side of a soak job: it prints a soakResult.
func soakWorker(url string, j job) error {
	if j.Soak == nil {
		return errors.New("soak job without its spec")
	}
	ctx, cancel := context.WithTimeout(context.Background(), j.Soak.Duration+10*time.Minute)
	defer cancel()
	r, err := runSoakJob(ctx, url, *j.Soak)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(r)
}

func writeSoakCSV(path string, samples []soakSample) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"t_s", "rss_mib", "heap_mib", "live_heap_mib", "goroutines", "pending", "confirmed", "received", "connected"})
	for _, s := range samples {
		_ = w.Write([]string{strconv.FormatFloat(s.T, 'f', 1, 64), strconv.FormatFloat(s.RSSMiB, 'f', 1, 64), strconv.FormatFloat(s.HeapMiB, 'f', 1, 64), strconv.FormatFloat(s.LiveHeapMiB, 'f', 1, 64),
			strconv.Itoa(s.Goroutines), strconv.FormatUint(s.Pending, 10), strconv.FormatUint(s.Confirmed, 10), strconv.FormatUint(s.Received, 10), strconv.FormatBool(s.Connected)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
