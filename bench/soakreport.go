package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// soakRun is one broker's soak results for the report: res is nil when its
// soak.json is missing, and cmd says how to make it.
type soakRun struct {
	label string // broker, as the results directory implies
	cmd   string
	png   string // link to the plot, relative to the report
	res   *soakResult
}

// loadSoakRuns reads out/soak.json and, unless out is itself LavinMQ's
// directory, out/lavinmq/soak.json; links are relative to the report dest.
func loadSoakRuns(out, dest string) []soakRun {
	dirs := []soakRun{{label: "RabbitMQ", cmd: "bench/run.sh --soak"}, {label: "LavinMQ", cmd: "BROKER=lavinmq bench/run.sh --soak"}}
	paths := []string{out, filepath.Join(out, "lavinmq")}
	if filepath.Base(out) == "lavinmq" {
		dirs, paths = dirs[1:], paths[:1]
	}
	for i := range dirs {
		var r soakResult
		if err := readJSON(filepath.Join(paths[i], "soak.json"), &r); err == nil {
			r.Summary = summarize(r) // the verdict of this code, from the samples
			dirs[i].res = &r
		}
		png := filepath.Join(paths[i], "soak.png")
		if rel, err := filepath.Rel(filepath.Dir(dest), png); err == nil {
			png = rel
		}
		dirs[i].png = filepath.ToSlash(png)
	}
	return dirs
}

// writeSoak writes the soak section: per broker, how every message ended,
// RSS and goroutines with their least-squares slopes after the warm-up, and
// the plot; "not run" with the command for a broker without results.
func writeSoak(w writer, runs []soakRun) {
	w("## Soak: a broker restart every few minutes, random body sizes (`bench/run.sh --soak`)\n\n")
	w("Not part of the full or quick run (too long). One worker process holds one client with an SDK producer (the\n")
	w("defaults: Confirm, DropOldest, 10 000 messages) and an SDK consumer (prefetch 200, ack each) on the same durable\n")
	w("queue, as a service that publishes and consumes would; so its RSS is the whole SDK's. It publishes at a steady\n")
	w("rate, each body a fresh, fully written buffer of a size drawn from a seeded generator, starting with its sequence\n")
	w("number; the consumer checks every body byte for byte. Every second it samples VmRSS (`/proc/self/status`), the\n")
	w("Go heap's objects and the live heap the last GC marked (`runtime/metrics`), and the goroutine count. At the end\n")
	w("it flushes, reads the queue dry and counts: lost = accepted but neither received nor reported through OnDrop;\n")
	w("duplicates are deliveries beyond the first of a message (at-least-once: re-sent after a restart, or redelivered\n")
	w("unacked).\n\n")
	w("The slopes are least-squares fits over the samples after the warm-up (past the first restart and its recovery):\n")
	w("over every sample (the outages' backlog peaks included, so their timing moves it) and over the steady samples only\n")
	w("(connected, under a second's worth of messages pending), the level the process returns to between outages, where a\n")
	w("leak shows. Start and end are medians of the steady samples of the window's first and last 30 s. Flat means three\n")
	w("things: the live heap's steady line (heap objects in runs without it) does not grow faster than %.0f%% of its\n", flatShare*100)
	w("median per hour by more than twice its standard error (a leak in Go code shows there); the goroutine count at the\n")
	w("end is no higher than at the start; and RSS is bounded: cut at the restarts, no cycle settles more than %.0f MiB\n", levelSlackMiB)
	w("above the one before unless its outage peaked more than %.0f%% above every earlier one (the runtime keeps some of\n", newPeakShare*100)
	w("what the largest backlog made it map: a high-water mark, not growth with time). The cycles are listed below the tables.\n\n")
	var ran []soakRun
	for _, r := range runs {
		if r.res == nil {
			w("- %s: not run (`%s`).\n", r.label, r.cmd)
		} else {
			ran = append(ran, r)
		}
	}
	if len(ran) < len(runs) {
		w("\n")
	}
	if len(ran) == 0 {
		return
	}
	w("| broker | date (UTC) | rate msg/s | bodies | duration | restarts (broker down s) | accepted | confirmed | dropped | resent | received | duplicates | lost |\n")
	w("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range ran {
		x := r.res
		var downs []string
		for _, rs := range x.Restarts {
			downs = append(downs, fmt.Sprintf("%.0f", rs.Up-rs.At))
		}
		dropped := fmt.Sprint(x.Dropped)
		if len(x.DroppedBy) > 0 {
			var by []string
			for k, n := range x.DroppedBy {
				by = append(by, fmt.Sprintf("%s %d", k, n))
			}
			slices.Sort(by)
			dropped += " (" + strings.Join(by, ", ") + ")"
		}
		lost := fmt.Sprint(x.Lost)
		if bad := x.Corrupt + x.Unexpected + x.DroppedAndReceived; bad > 0 {
			lost += fmt.Sprintf(" (and %d corrupt, unexpected or dropped yet received)", bad)
		}
		w("| %s | %s | %d | %d B – %d KiB, seed %d | %v | %d (%s) | %d (%.0f MiB) | %d | %s | %d | %d | %d | %s |\n",
			x.Machine.Broker, x.Machine.Date, x.Spec.Rate, x.Spec.MinSize, x.Spec.MaxSize>>10, x.Spec.Seed, x.Spec.Duration,
			len(x.Restarts), strings.Join(downs, ", "), x.Accepted, float64(x.AcceptedBytes)/(1<<20), x.Confirmed, dropped, x.Resent,
			x.Received, x.Duplicates, lost)
	}
	w("\n| broker | fit window s (steady samples) | RSS start → end MiB | RSS median / peak MiB | largest backlog: messages (≈ MiB of bodies) | RSS slope MiB/min, every sample | RSS slope MiB/min, steady | Go heap judged: median MiB | its slope MiB/min, steady (± 2 SE) | goroutines start → end | goroutine slope /min, steady | goroutines before client / after Close | flat |\n")
	w("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range ran {
		x, s := r.res, r.res.Summary
		backlog, mean := uint64(0), 0.0
		for _, p := range x.Samples {
			backlog = max(backlog, p.Pending)
		}
		if x.Accepted > 0 {
			mean = float64(x.AcceptedBytes) / float64(x.Accepted)
		}
		w("| %s | %.0f–%.0f (%d of %d) | %.1f → %.1f | %.1f / %.1f | %d (%.0f) | %+.3f | %+.3f | %s: %.1f | %+.4f (± %.4f) | %.0f → %.0f | %+.3f | %d / %d | %s |\n",
			x.Machine.Broker, s.FitFrom, s.FitTo, s.SteadySamples, s.FitSamples, s.RSSStart, s.RSSEnd, s.RSSMedian, s.RSSPeak,
			backlog, float64(backlog)*mean/(1<<20), s.RSSSlope, s.SteadyRSSSlope, s.HeapKind, s.JudgedHeapMedian, s.SteadyJudgedSlope, s.SteadyJudgedSE2, s.GoroutinesStart, s.GoroutinesEnd, s.SteadyGoroutineSlope,
			x.GoroutinesBefore, x.GoroutinesAfter, flatCell(s))
	}
	w("\nRSS per restart cycle (seconds: outage peak → level it settles to, MiB; in brackets, seconds from the restart until\n")
	w("the client was connected again with its backlog published):\n\n")
	for _, r := range ran {
		var cs []string
		for _, c := range r.res.Summary.Cycles {
			caught := ""
			if c.CaughtUp > 0 {
				caught = fmt.Sprintf(" [%.0f s]", c.CaughtUp)
			}
			cs = append(cs, fmt.Sprintf("%.0f–%.0f: %.1f → %.1f%s", c.From, c.To, c.PeakRSS, c.LevelRSS, caught))
		}
		w("- %s: %s\n", r.res.Machine.Broker, strings.Join(cs, "; "))
	}
	w("\n")
	for _, r := range ran {
		w("![soak, %s](%s)\n\n", r.label, r.png)
		if r.res.Note != "" {
			w("%s: %s\n\n", r.label, r.res.Note)
		}
	}
}

// flatCell is "yes", or "**no**" with what was not flat.
func flatCell(s soakSummary) string {
	if s.Flat {
		return "yes"
	}
	return "**no** (" + strings.Join(notFlat(s), ", ") + ")"
}

// notFlat names what grew in a run that is not flat.
func notFlat(s soakSummary) []string {
	var why []string
	for _, c := range []struct {
		ok   bool
		name string
	}{{s.FlatHeap, "heap grows"}, {s.FlatRSS, "RSS grows"}, {s.FlatGoroutines, "goroutines grow"}} {
		if !c.ok {
			why = append(why, c.name)
		}
	}
	if len(why) == 0 && !s.Flat {
		why = append(why, "too few samples")
	}
	return why
}
