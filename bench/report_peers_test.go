package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// res builds a result of one sample.
func res(sc, v, impl string, rate float64, f func(*result)) result {
	r := result{Job: job{Scenario: sc, Variant: v, Impl: impl, Sample: 1}, MsgPerSec: rate}
	if f != nil {
		f(&r)
	}
	return r
}

func lat(p50, p99, mx float64) func(*result) {
	return func(r *result) { r.LatP50, r.LatP99, r.LatMax, r.Offered = p50, p99, mx, 1000 }
}

// fixture: SDK 1.1× raw on every throughput row, latency rows where the SDK
// meets the p99 goal at 25 % and misses it at 50 %, and an outage sample
// with no loss for the SDK and 3 silently lost for go-rabbitmq.
func fixture() []result {
	rs := []result{
		res("baseline", "fire_and_forget 16B", "sdk", 110, nil), res("baseline", "fire_and_forget 16B", "raw", 100, nil),
		res("baseline", "confirm 16B", "sdk", 110, nil), res("baseline", "confirm 16B", "raw", 100, nil),
		res("baseline", "confirm 16B", implAMQPRecovery, 90, nil), res("baseline", "confirm 16B", implGoRabbitMQ, 80, nil),
		res("consume", "prefetch 100, ack each", "sdk", 210, nil), res("consume", "prefetch 100, ack each", "raw", 100, nil),
		res("latency", latencyMaxVariant, "raw", 4000, func(r *result) { r.Job.Duration = 2 * time.Second }),
		// 25 %: raw p99 10 ms allows 13 ms; the SDK has 12.9.
		res("latency", latencyVariant(25), "sdk", 1000, lat(1, 12.9, 20)), res("latency", latencyVariant(25), "raw", 1000, lat(1, 10, 15)),
		res("latency", latencyVariant(25), implAMQPRecovery, 1000, lat(2, 11, 16)),
		// 50 %: raw p99 10 ms allows 13 ms; the SDK has 13.1.
		res("latency", latencyVariant(50), "sdk", 1000, lat(1, 13.1, 20)), res("latency", latencyVariant(50), "raw", 1000, lat(1, 10, 15)),
		res("outage", outageVariant, "sdk", 2000, func(r *result) { r.Msgs, r.Accepted, r.Received, r.MaxCallMs = 30000, 30000, 30000, 0.4 }),
		res("outage", outageVariant, implGoRabbitMQ, 2000, func(r *result) {
			r.Msgs, r.Accepted, r.Received, r.Lost, r.Failed, r.MaxCallMs = 30000, 30000, 29990, 3, 7, 4900
		}),
	}
	return rs
}

func TestTargets17ThresholdsFollowTheBroker(t *testing.T) {
	aggs := aggregates(fixture())
	met := func(b brokerResults) map[string]bool {
		m := map[string]bool{}
		for _, tg := range targets17(b) {
			if !tg.ok {
				m[tg.goal] = false
				continue
			}
			m[tg.goal] = tg.met
		}
		return m
	}
	rmq := met(brokerResults{name: "RabbitMQ 3.10.8", aggs: aggs})
	lav := met(brokerResults{name: "LavinMQ 2.9.1", aggs: aggs})
	// 1.10× meets RabbitMQ's 1.05× but not LavinMQ's 5× and 2.5×.
	for goal, want := range map[string]bool{
		"FireAndForget SDK ÷ raw ≥ 1.05×":                     true,
		"Confirm (mandatory on) SDK ÷ raw window ≥ 1.05×":     true,
		"consume + ack SDK ÷ raw ack-each, prefetch 100 ≥ 2×": true,
	} {
		got, ok := rmq[goal]
		if !ok || got != want {
			t.Errorf("RabbitMQ %q: met %v (present %v), want %v; goals %v", goal, got, ok, want, rmq)
		}
	}
	if lav["FireAndForget SDK ÷ raw ≥ 5×"] || lav["Confirm (mandatory on) SDK ÷ raw window ≥ 2.5×"] {
		t.Errorf("LavinMQ: 1.10× counted as meeting 5× / 2.5×: %v", lav)
	}
	if _, ok := lav["FireAndForget SDK ÷ raw ≥ 5×"]; !ok {
		t.Errorf("LavinMQ goals lack the 5× FireAndForget row: %v", lav)
	}
	p := func(pct string) string { return "open-loop p99 at " + pct + " % of raw max: SDK ≤ 1.2 × raw + 1 ms" }
	if !rmq[p("25")] || rmq[p("50")] {
		t.Errorf("latency goal: 12.9 vs 13 allowed must be met, 13.1 must not: %v", rmq)
	}
	if v, ok := rmq[p("75")]; !ok || v {
		t.Errorf("75 %% row without data must be present and not met: %v (present %v)", v, ok)
	}
	if !rmq["outage (SIGKILL): SDK silently lost = 0"] {
		t.Errorf("outage with 0 lost not met: %v", rmq)
	}
}

func TestReportWritesPeerTablesForBothBrokers(t *testing.T) {
	dir := t.TempDir()
	write := func(path string, v any) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := writeJSON(path, v); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "fingerprint.json"), machine{Broker: "RabbitMQ 3.10.8"})
	write(filepath.Join(dir, "bench.json"), fixture())
	write(filepath.Join(dir, "seed.json"), []seedFigure{})
	if err := os.WriteFile(filepath.Join(dir, "buffer-bench.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	lav := fixture()
	lav[14].Lost = 2 // the SDK loses 2 on LavinMQ: its target must say no
	write(filepath.Join(dir, "lavinmq", "fingerprint.json"), machine{Broker: "LavinMQ 2.9.1"})
	write(filepath.Join(dir, "lavinmq", "bench.json"), lav)
	out := filepath.Join(dir, "REPORT.md")
	if err := reportCmd([]string{"-out", dir, "-o", out}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for _, want := range []string{
		"### Targets of issue 17",
		"| RabbitMQ 3.10.8 | outage (SIGKILL): SDK silently lost = 0 | 0 lost over 1 sample(s) | yes |",
		"| LavinMQ 2.9.1 | outage (SIGKILL): SDK silently lost = 0 | 2 lost over 1 sample(s) | **no** |",
		"| LavinMQ 2.9.1 | FireAndForget SDK ÷ raw ≥ 5× | 1.10× (110 ÷ 100 msg/s) | **no** |",
		"### Side by side with amqp091-go + Recovery and go-rabbitmq: RabbitMQ 3.10.8",
		"### Side by side with amqp091-go + Recovery and go-rabbitmq: LavinMQ 2.9.1",
		"| Confirm 16 B, as fast as possible (msg/s) | 100 | 110 (1.10×) | 90 (0.90×) | 80 (0.80×) |",
		"| 25 % (1000 msg/s) | 1.0 / 10.0 / 15.0 | 1.0 / 12.9 / 20.0 | 2.0 / 11.0 / 16.0 | — | 12.9 ≤ 13.0: yes |",
		"| 50 % (1000 msg/s) | 1.0 / 10.0 / 15.0 | 1.0 / 13.1 / 20.0 | — | — | 13.1 ≤ 13.0: **no** |",
		"sustained maximum, measured first in the same run: 4000 msg/s",
		"| go-rabbitmq v0.15.0 | 1 | 30000 | 4900.0 | 30000 | 7 | 29990 | 0 | 3 | 0 | 0 |",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("report:\n%s", text)
	}
}

func TestScheduleIsOpenLoop(t *testing.T) {
	start := time.Now()
	s := schedule{start: start, rate: 4000}
	if got := s.due(4000).Sub(start); got != time.Second {
		t.Fatalf("message 4000 at 4000 msg/s due after %v, want 1s", got)
	}
	if got := s.due(1).Sub(start); got != 250*time.Microsecond {
		t.Fatalf("message 1 due after %v, want 250µs", got)
	}
	// A message already overdue is due at its scheduled time, not when the
	// loop got to it: the delay counts in its latency.
	late := schedule{start: time.Now().Add(-time.Second), rate: 10}
	if d := late.wait(2); time.Since(d) < 700*time.Millisecond {
		t.Fatalf("overdue message: due %v ago, want its schedule (0.8s ago)", time.Since(d))
	}
}

func TestOutageBodyCarriesTheID(t *testing.T) {
	for _, i := range []int{0, 1, 29999} {
		if got, ok := outageID(outageBody(16, i)); !ok || got != i {
			t.Fatalf("id %d read back as %d (%v)", i, got, ok)
		}
	}
	if _, ok := outageID(make([]byte, 8)); ok {
		t.Fatal("an 8-byte body has no ID")
	}
}

func TestPlanRunsPeersLatencyAndOutage(t *testing.T) {
	for _, quick := range []bool{true, false} {
		jobs, _ := plan(quick)
		seen := map[string]int{}
		for _, j := range jobs {
			seen[j.Scenario+"/"+j.Impl]++
		}
		for _, k := range []string{"baseline/" + implAMQPRecovery, "baseline/" + implGoRabbitMQ, "consume/" + implAMQPRecovery,
			"consume/" + implGoRabbitMQ, "latency/sdk", "latency/raw", "latency/" + implAMQPRecovery, "latency/" + implGoRabbitMQ,
			"outage/sdk", "outage/" + implAMQPRecovery, "outage/" + implGoRabbitMQ} {
			if seen[k] == 0 {
				t.Errorf("quick=%v: no %s job", quick, k)
			}
		}
		var lat []job
		for _, j := range jobs {
			if j.Scenario == "latency" {
				lat = append(lat, j)
			}
		}
		if lat[0].Variant != latencyMaxVariant || lat[0].Percent != 0 {
			t.Errorf("quick=%v: the raw max must run before the offered rates, first is %+v", quick, lat[0])
		}
		if last := jobs[len(jobs)-1]; last.Scenario != "outage" {
			t.Errorf("quick=%v: the broker crash must come last, last is %s", quick, last.Scenario)
		}
		if seen["outage/sdk"] != map[bool]int{true: 1, false: 3}[quick] {
			t.Errorf("quick=%v: %d outage samples of the SDK", quick, seen["outage/sdk"])
		}
	}
	jobs, _ := plan(true)
	for _, j := range onlyJobs(jobs, []string{"outage"}, implGoRabbitMQPlain) {
		if j.Scenario != "outage" || j.Impl != implGoRabbitMQPlain {
			t.Errorf("-only outage -impl %s kept %s/%s", implGoRabbitMQPlain, j.Scenario, j.Impl)
		}
	}
	if got := onlyJobs(jobs, []string{"burst"}, ""); len(got) == 0 || got[0].Scenario != "baseline" || got[0].Impl != "sdk" {
		t.Errorf("-only burst must start with the SDK's Confirm baseline (its rate), got %v", got)
	}
	results := []result{res("latency", latencyMaxVariant, "raw", 40_000, nil)}
	if got := offeredRate(results, 75); got != 30_000 {
		t.Fatalf("75 %% of 40000 = %d", got)
	}
}

func TestOverlapNeedsRangesOfSeveralSamples(t *testing.T) {
	for _, c := range []struct {
		a, b spread
		want bool
	}{
		{spread{5, 1, 10}, spread{12, 9, 20}, true},
		{spread{5, 1, 10}, spread{15, 11, 20}, false},
		{spread{5, 5, 5}, spread{5, 1, 10}, false}, // one sample: no range to compare
	} {
		if got := overlap(c.a, c.b); got != c.want {
			t.Errorf("overlap(%v, %v) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}
