package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The report's side-by-side sections (issue 17): the SDK, raw amqp091-go and
// the libraries a user would pick instead, on one broker's results; and the
// targets of issue 17, met or not.

// peerImpls are the columns of the side-by-side tables, in order.
var peerImpls = []string{"raw", "sdk", implAMQPRecovery, implGoRabbitMQ}

var implTitle = map[string]string{
	"raw": "raw amqp091-go", "sdk": "lavinmq-go", implAMQPRecovery: "amqp091-go + Config.Recovery", implGoRabbitMQ: "go-rabbitmq v0.15.0",
	implGoRabbitMQPlain: "go-rabbitmq v0.15.0, Publish without confirms",
}

// brokerResults is one broker's aggregates, for the sections that show both.
type brokerResults struct {
	name string // e.g. "RabbitMQ 3.10.8"
	aggs []aggregate
}

func (b brokerResults) lavin() bool { return strings.Contains(strings.ToLower(b.name), "lavinmq") }

func findAgg(aggs []aggregate, sc, v, impl string) aggregate {
	for _, a := range aggs {
		if a.Scenario == sc && a.Variant == v && a.Impl == impl {
			return a
		}
	}
	return aggregate{}
}

// spread is the median and range of one figure over the samples of a row.
type spread struct{ med, lo, hi float64 }

func spreadOf(rs []result, get func(result) float64) spread {
	var xs []float64
	for _, r := range rs {
		xs = append(xs, get(r))
	}
	if len(xs) == 0 {
		return spread{}
	}
	return spread{median(xs), slices.Min(xs), slices.Max(xs)}
}

func (s spread) String() string {
	if s.lo == s.hi {
		return fmt.Sprintf("%.1f", s.med)
	}
	return fmt.Sprintf("%.1f (%.1f–%.1f)", s.med, s.lo, s.hi)
}

// latencyGoal is issue 17's: SDK p99 ≤ 1.2 × raw p99 + 1 ms.
func latencyGoal(rawP99 float64) float64 { return 1.2*rawP99 + 1 }

func metWord(ok bool) string { return map[bool]string{true: "yes", false: "**no**"}[ok] }

// writePeers writes the throughput, latency and outage tables of one broker.
func writePeers(w writer, b brokerResults) {
	w("### Side by side with amqp091-go + Recovery and go-rabbitmq: %s\n\n", b.name)
	w("Each peer is written the way its own docs show (`bench/peer_amqp091.go`, `bench/peer_gorabbitmq.go` cite them):\n")
	w("amqp091-go v1.16 dialled with `Config{Recovery: &amqp.Recovery{}}`, publishing with `PublishWithDeferredConfirm`; go-rabbitmq\n")
	w("with `WithPublisherOptionsConfirm` and `PublishWithDeferredConfirmWithContext`, consuming with `NewConsumer` + `Run`. Both wait\n")
	w("for their confirmations with the raw loop's window (%d unconfirmed). Medians over the samples, range in brackets.\n\n", window)
	w("| row | %s |\n|---|%s\n", strings.Join(titles(peerImpls), " | "), strings.Repeat("---|", len(peerImpls)))
	for _, row := range []struct{ name, sc, v string }{
		{"Confirm 16 B, as fast as possible (msg/s)", "baseline", "confirm 16B"},
		{"consume + ack each, prefetch 100 (msg/s)", "consume", "prefetch 100, ack each"},
	} {
		raw := findAgg(b.aggs, row.sc, row.v, "raw")
		var cells []string
		for _, impl := range peerImpls {
			a := findAgg(b.aggs, row.sc, row.v, impl)
			switch {
			case a.Samples == 0:
				cells = append(cells, "—")
			case impl == "raw" || raw.Mean == 0:
				cells = append(cells, fmt.Sprintf("%.0f", median(rates(a))))
			default:
				cells = append(cells, fmt.Sprintf("%.0f (%.2f×)", median(rates(a)), median(rates(a))/median(rates(raw))))
			}
		}
		w("| %s | %s |\n", row.name, strings.Join(cells, " | "))
	}
	w("\n")
	writeLatency(w, b)
	writeOutage(w, b)
}

func titles(impls []string) []string {
	var out []string
	for _, i := range impls {
		out = append(out, implTitle[i])
	}
	return out
}

func rates(a aggregate) []float64 {
	var xs []float64
	for _, r := range a.Results {
		xs = append(xs, r.MsgPerSec)
	}
	return xs
}

func writeLatency(w writer, b brokerResults) {
	ref := findAgg(b.aggs, "latency", latencyMaxVariant, "raw")
	if ref.Samples == 0 {
		w("No latency results in this run (`bench run` without `-only`, or `-only latency`).\n\n")
		return
	}
	w("#### Confirm latency at a fixed offered rate (open loop)\n\n")
	w("Message i is due at start + i/rate whatever happened to the ones before it; its latency runs from that due time to its\n")
	w("confirm, so a caller held by a full window or a slow call is counted in every message it delays (no coordinated\n")
	w("omission). The rates are 25, 50 and 75 %% of the raw loop's sustained maximum, measured first in the same run: %.0f msg/s\n", ref.Mean)
	w("(as fast as possible for %.0f s). Persistent messages, one caller goroutine; the SDK with its defaults (Confirm, mandatory)\n", ref.Results[0].Job.Duration.Seconds())
	w("and the Block policy. p50 / p99 / max in ms, medians over the samples (p99 range in brackets).\n\n")
	w("| offered | %s | SDK p99 ≤ 1.2 × raw p99 + 1 ms |\n|---|%s---|\n", strings.Join(titles(peerImpls), " | "), strings.Repeat("---|", len(peerImpls)))
	for _, pct := range latencyPercents {
		v := latencyVariant(pct)
		raw, sdk := findAgg(b.aggs, "latency", v, "raw"), findAgg(b.aggs, "latency", v, "sdk")
		if raw.Samples == 0 {
			continue
		}
		var cells []string
		for _, impl := range peerImpls {
			a := findAgg(b.aggs, "latency", v, impl)
			if a.Samples == 0 {
				cells = append(cells, "—")
				continue
			}
			p50 := spreadOf(a.Results, func(r result) float64 { return r.LatP50 })
			p99 := spreadOf(a.Results, func(r result) float64 { return r.LatP99 })
			mx := spreadOf(a.Results, func(r result) float64 { return r.LatMax })
			cell := fmt.Sprintf("%.1f / %s / %.1f", p50.med, p99, mx.med)
			if ach := median(rates(a)); ach < 0.95*raw.Results[0].Offered {
				cell += fmt.Sprintf(" (kept up %.0f msg/s only)", ach)
			}
			cells = append(cells, cell)
		}
		goal := "—"
		if sdk.Samples > 0 {
			s99, r99 := latP99(sdk), latP99(raw)
			goal = fmt.Sprintf("%.1f ≤ %.1f: %s", s99, latencyGoal(r99), metWord(s99 <= latencyGoal(r99)))
			if overlap(p99Spread(sdk), p99Spread(raw)) {
				goal += " (p99 ranges overlap: within noise)"
			}
		}
		w("| %d %% (%.0f msg/s) | %s | %s |\n", pct, raw.Results[0].Offered, strings.Join(cells, " | "), goal)
	}
	w("\n")
}

func latP99(a aggregate) float64 { return p99Spread(a).med }

func p99Spread(a aggregate) spread {
	return spreadOf(a.Results, func(r result) float64 { return r.LatP99 })
}

// overlap reports whether two ranges of several samples each overlap.
func overlap(a, b spread) bool { return a.lo < a.hi && b.lo < b.hi && a.lo <= b.hi && b.lo <= a.hi }

func writeOutage(w writer, b brokerResults) {
	var rows []aggregate
	for _, impl := range []string{"sdk", implAMQPRecovery, implGoRabbitMQ, implGoRabbitMQPlain} {
		if a := findAgg(b.aggs, "outage", outageVariant, impl); a.Samples > 0 {
			rows = append(rows, a)
		}
	}
	if len(rows) == 0 {
		w("No outage results in this run.\n\n")
		return
	}
	w("#### Outage: %s, then the queue read dry\n\n", outageVariant)
	w("Open loop at 2 000 msg/s into a durable queue, persistent messages, the broker SIGKILLed at 4 s and started again at once\n")
	w("(`scripts/broker.sh kill` / `scripts/lavinmq.sh kill`, then `start`). Afterwards a plain consumer reads the queue dry and\n")
	w("every message ID is settled. *Longest hold*: the longest time one message kept the caller from its next one (for the\n")
	w("SDK one `Publish` call; for the peers the library call plus the retries after an error: amqp091-go's recovery example\n")
	w("waits while the connection reconnects, go-rabbitmq's caller retries every 100 ms). *Told failed*: the caller was told\n")
	w("(a nacked deferred confirmation, OnDrop, an error given up on); re-sending those is the caller's job with both peers.\n")
	w("go-rabbitmq's Quick Start publisher (`Publish`, no confirm mode, persistent messages) has no confirmation to await.\n")
	w("*Silently lost*: accepted, never reported failed, not in the queue. *Unsettled*: a confirmation that never resolved\n")
	w("within 30 s of the end.\n\n")
	w("| library | sample | offered | longest hold ms | accepted | told failed | received | duplicates | silently lost | failed but received | unsettled | note |\n")
	w("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, a := range rows {
		for _, r := range a.Results {
			w("| %s | %d | %d | %.1f | %d | %d | %d | %d | %d | %d | %d | %s |\n", implTitle[a.Impl], r.Job.Sample, r.Msgs, r.MaxCallMs,
				r.Accepted, r.Failed, r.Received, r.Duplicates, r.Lost, r.FailedButReceived, r.Unsettled, r.Note)
		}
	}
	w("\n")
}

// target17 is one goal of issue 17 on one broker.
type target17 struct {
	broker, goal, measured string
	met                    bool
	ok                     bool // measured at all
}

// targets17 evaluates issue 17's goals on one broker's results: throughput
// ratios against the raw loop (with the SDK's defaults), consume against raw
// ack-each, open-loop p99 per offered rate, and no silent loss in the outage.
func targets17(b brokerResults) []target17 {
	var out []target17
	ratio := func(goal, sc, v string, want float64) {
		sdk, raw := findAgg(b.aggs, sc, v, "sdk"), findAgg(b.aggs, sc, v, "raw")
		t := target17{broker: b.name, goal: fmt.Sprintf("%s ≥ %s×", goal, strconv.FormatFloat(want, 'f', -1, 64))}
		if sdk.Mean > 0 && raw.Mean > 0 {
			r := sdk.Mean / raw.Mean
			t.measured, t.met, t.ok = fmt.Sprintf("%.2f× (%.0f ÷ %.0f msg/s)", r, sdk.Mean, raw.Mean), r >= want, true
		}
		out = append(out, t)
	}
	ff, cf := 1.05, 1.05
	if b.lavin() {
		ff, cf = 5, 2.5
	}
	ratio("FireAndForget SDK ÷ raw", "baseline", "fire_and_forget 16B", ff)
	ratio("Confirm (mandatory on) SDK ÷ raw window", "baseline", "confirm 16B", cf)
	ratio("consume + ack SDK ÷ raw ack-each, prefetch 100", "consume", "prefetch 100, ack each", 2)
	for _, pct := range latencyPercents {
		v := latencyVariant(pct)
		sdk, raw := findAgg(b.aggs, "latency", v, "sdk"), findAgg(b.aggs, "latency", v, "raw")
		t := target17{broker: b.name, goal: fmt.Sprintf("open-loop p99 at %d %% of raw max: SDK ≤ 1.2 × raw + 1 ms", pct)}
		if sdk.Samples > 0 && raw.Samples > 0 {
			s, r := latP99(sdk), latP99(raw)
			t.measured, t.met, t.ok = fmt.Sprintf("%.1f ms vs %.1f ms allowed (raw %.1f)", s, latencyGoal(r), r), s <= latencyGoal(r), true
			if overlap(p99Spread(sdk), p99Spread(raw)) {
				t.measured += "; p99 ranges over the samples overlap"
			}
		}
		out = append(out, t)
	}
	t := target17{broker: b.name, goal: "outage (SIGKILL): SDK silently lost = 0"}
	if a := findAgg(b.aggs, "outage", outageVariant, "sdk"); a.Samples > 0 {
		var lost int64
		for _, r := range a.Results {
			lost += r.Lost
		}
		t.measured, t.met, t.ok = fmt.Sprintf("%d lost over %d sample(s)", lost, a.Samples), lost == 0, true
	}
	return append(out, t)
}

func writeTargets17(w writer, bs []brokerResults) {
	w("### Targets of issue 17 (faster than the raw library, side by side with the alternatives)\n\n")
	w("SDK and raw from the same run of each broker; \"not measured\" where that run lacks the scenario.\n\n")
	w("| broker | goal | measured | met |\n|---|---|---|---|\n")
	for _, b := range bs {
		for _, t := range targets17(b) {
			if !t.ok {
				w("| %s | %s | not measured | — |\n", t.broker, t.goal)
				continue
			}
			w("| %s | %s | %s | %s |\n", t.broker, t.goal, t.measured, metWord(t.met))
		}
	}
	w("\n")
}
