package main

import (
	"encoding/csv"
	"fmt"
	"os"
	"strconv"
)

// aggregate summarises the samples of one scenario, variant and impl.
type aggregate struct {
	Scenario, Variant, Impl            string
	Samples                            int
	Mean, Std                          float64 // msg/s
	ConfirmP50, ConfirmP95, ConfirmP99 float64 // ms, mean over samples
	E2EP50, E2EP95, E2EP99             float64
	CPUSeconds, MaxRSSMB               float64 // mean CPU per sample, max RSS over samples
	Ratio                              float64 // sdk mean / raw mean (0 when there is no raw row)
	Results                            []result
}

type key struct{ scenario, variant, impl string }

// aggregates groups results in the order they first appear.
func aggregates(results []result) []aggregate {
	var order []key
	groups := map[key][]result{}
	for _, r := range results {
		k := key{r.Job.Scenario, r.Job.Variant, r.Job.Impl}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	var out []aggregate
	for _, k := range order {
		rs := groups[k]
		a := aggregate{Scenario: k.scenario, Variant: k.variant, Impl: k.impl, Samples: len(rs), Results: rs}
		var rates []float64
		for _, r := range rs {
			rates = append(rates, r.MsgPerSec)
			n := float64(len(rs))
			a.ConfirmP50 += r.ConfirmP50 / n
			a.ConfirmP95 += r.ConfirmP95 / n
			a.ConfirmP99 += r.ConfirmP99 / n
			a.E2EP50 += r.E2EP50 / n
			a.E2EP95 += r.E2EP95 / n
			a.E2EP99 += r.E2EP99 / n
			a.CPUSeconds += r.CPUSeconds / n
			a.MaxRSSMB = max(a.MaxRSSMB, r.MaxRSSMB)
		}
		a.Mean, a.Std = meanStd(rates)
		out = append(out, a)
	}
	for i := range out {
		// Throughput ratios mean something where both sides do the same work;
		// the burst, timeline, latency and outage scenarios are compared in
		// their own tables.
		switch out[i].Scenario {
		case "burst", "timeline", "latency", "outage":
			continue
		}
		if out[i].Impl == "raw" {
			continue
		}
		for _, raw := range out {
			if raw.Impl == "raw" && raw.Scenario == out[i].Scenario && raw.Variant == out[i].Variant && raw.Mean > 0 {
				out[i].Ratio = out[i].Mean / raw.Mean
			}
		}
	}
	return out
}

func aggregateOf(results []result, scenario, variant, impl string) aggregate {
	for _, a := range aggregates(results) {
		if a.Scenario == scenario && a.Variant == variant && a.Impl == impl {
			return a
		}
	}
	return aggregate{}
}

func writeSummaryCSV(path string, results []result) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w := csv.NewWriter(f)
	_ = w.Write([]string{"scenario", "variant", "impl", "samples", "msg_per_sec_mean", "msg_per_sec_std", "ratio_vs_raw",
		"confirm_p50_ms", "confirm_p95_ms", "confirm_p99_ms", "e2e_p50_ms", "e2e_p95_ms", "e2e_p99_ms", "cpu_seconds", "max_rss_mb"})
	ff := func(x float64) string { return strconv.FormatFloat(x, 'f', 3, 64) }
	for _, a := range aggregates(results) {
		_ = w.Write([]string{a.Scenario, a.Variant, a.Impl, fmt.Sprint(a.Samples), ff(a.Mean), ff(a.Std), ff(a.Ratio),
			ff(a.ConfirmP50), ff(a.ConfirmP95), ff(a.ConfirmP99), ff(a.E2EP50), ff(a.E2EP95), ff(a.E2EP99), ff(a.CPUSeconds), ff(a.MaxRSSMB)})
	}
	w.Flush()
	return w.Error()
}
