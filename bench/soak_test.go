package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/c3ecadf2/lavinmq-go/consumer"
	"github.com/c3ecadf2/lavinmq-go/producer"
)

func TestSlopeStandardError(t *testing.T) {
	x := []float64{0, 1, 2, 3, 4}
	if se := slopeSE(x, []float64{1, 3, 5, 7, 9}, 2, 1); se != 0 {
		t.Fatalf("exact line: SE %v, want 0", se)
	}
	// Residuals +1 -1 +1 -1 +1 about y = x: sum of squares 5, n-2 = 3, Sxx = 10.
	y := []float64{1, 0, 3, 2, 5}
	slope, icpt := leastSquares(x, y)
	if want := math.Sqrt(5.0 / 3 / 10); math.Abs(slopeSE(x, y, 1, 0)-want) > 1e-12 || slope <= 0 || icpt == 0 {
		t.Fatalf("SE %v, want %v (fit %v %v)", slopeSE(x, y, 1, 0), want, slope, icpt)
	}
	if slopeSE(x[:2], y[:2], 1, 0) != 0 {
		t.Fatal("two points have no error estimate")
	}
}

func TestLeastSquaresRecoversSlopeAndIntercept(t *testing.T) {
	var x, y []float64
	for i := range 50 {
		x = append(x, float64(i))
		noise := 0.5 * float64(1-2*(i%2)) // +0.5, -0.5, ...: no trend
		y = append(y, 3*float64(i)+2+noise)
	}
	slope, icpt := leastSquares(x, y)
	if math.Abs(slope-3) > 0.01 || math.Abs(icpt-2) > 0.5 {
		t.Fatalf("slope %v intercept %v, want 3 and 2", slope, icpt)
	}
	if s, i := leastSquares([]float64{4, 4, 4}, []float64{1, 2, 3}); s != 0 || i != 2 {
		t.Fatalf("all x equal: slope %v intercept %v, want 0 and the mean 2", s, i)
	}
	if s, i := leastSquares(nil, nil); s != 0 || i != 0 {
		t.Fatalf("no points: %v %v", s, i)
	}
}

// soakRun600 makes 10 minutes of samples a second: an RSS baseline that
// grows by rssLeak MiB a minute, a heap that grows by heapLeak, goroutines by
// gLeak; a broker restart every 120 s whose outage lasts 12 s, raises RSS by
// 120 MiB and takes 4 goroutines away. Before the warm-up RSS is huge, which
// the fit must ignore.
func soakRun600(rssLeak, heapLeak, gLeak float64) soakResult {
	r := soakResult{Spec: soakSpec{Rate: 200, Duration: 10 * time.Minute, Restart: 2 * time.Minute, Warmup: 150 * time.Second}}
	for at := 120.0; at < 600; at += 120 {
		r.Restarts = append(r.Restarts, soakRestart{At: at, Up: at + 10})
	}
	for sec := 1; sec <= 600; sec++ {
		tm := float64(sec)
		p := soakSample{T: tm, RSSMiB: 25 + rssLeak*tm/60, HeapMiB: 8 + heapLeak*tm/60, Goroutines: 11 + int(gLeak*tm/60), Connected: true}
		if sec < 100 {
			p.RSSMiB = 500
		}
		if phase := sec % 120; sec >= 120 && sec < 600 && phase < 12 {
			p.RSSMiB += 120 * float64(phase) / 12
			p.HeapMiB += 100 * float64(phase) / 12
			p.Goroutines -= 4
			p.Connected = phase > 9
			p.Pending = uint64(200 * (phase + 1))
		}
		r.Samples = append(r.Samples, p)
	}
	return r
}

func TestSummarizeFitsOnlyTheWindowAndJudgesFlatness(t *testing.T) {
	flat := summarize(soakRun600(0, 0, 0))
	t.Logf("flat: %+v", flat)
	if flat.FitFrom != 150 || flat.FitTo != 600 || flat.FitSamples != 451 {
		t.Fatalf("fit window %v-%v, %d samples; want 150-600, 451", flat.FitFrom, flat.FitTo, flat.FitSamples)
	}
	if want := 451 - 3*12; flat.SteadySamples != want {
		t.Fatalf("steady samples %d, want %d (the window less three outages)", flat.SteadySamples, want)
	}
	if math.Abs(flat.SteadyRSSSlope) > 1e-9 || math.Abs(flat.SteadyGoroutineSlope) > 1e-9 || math.Abs(flat.SteadyHeapSlope) > 1e-9 {
		t.Fatalf("flat run: steady slopes RSS %v heap %v goroutines %v, want 0", flat.SteadyRSSSlope, flat.SteadyHeapSlope, flat.SteadyGoroutineSlope)
	}
	if flat.RSSSlope == 0 {
		t.Fatal("the every-sample slope should feel the outage peaks")
	}
	if !flat.Flat || flat.RSSStart != 25 || flat.RSSEnd != 25 || flat.RSSPeak != 500 || len(flat.Cycles) != 5 {
		t.Fatalf("flat run judged %+v", flat)
	}
	if c := flat.Cycles[2]; c.From != 240 || c.To != 360 || c.LevelRSS != 25 || math.Abs(c.PeakRSS-135) > 1e-9 || c.CaughtUp != 12 {
		t.Fatalf("cycle 2: %+v, want 240-360, peak 135, level 25, caught up after 12 s", c)
	}
	if flat.Cycles[0].CaughtUp != 0 {
		t.Fatalf("cycle 0 has no restart: %+v", flat.Cycles[0])
	}

	heap := summarize(soakRun600(0, 0.1, 0)) // 6 MiB an hour on an 8 MiB heap
	t.Logf("heap leaking 0.1 MiB/min: steady slope %.4f, flat heap %v rss %v", heap.SteadyHeapSlope, heap.FlatHeap, heap.FlatRSS)
	if math.Abs(heap.SteadyHeapSlope-0.1) > 1e-9 || heap.FlatHeap || heap.Flat || !heap.FlatRSS {
		t.Fatalf("heap leak judged %+v", heap)
	}

	rss := summarize(soakRun600(1, 0, 0)) // RSS 2 MiB higher every cycle, outage peaks alike
	t.Logf("RSS leaking 1 MiB/min: steady slope %.4f, every-sample %.4f", rss.SteadyRSSSlope, rss.RSSSlope)
	if math.Abs(rss.SteadyRSSSlope-1) > 1e-9 || rss.FlatRSS || rss.Flat || !rss.FlatHeap {
		t.Fatalf("RSS leak judged %+v", rss)
	}
	if rss.RSSEnd-rss.RSSStart < 6 {
		t.Fatalf("RSS start %v end %v: the leak should show", rss.RSSStart, rss.RSSEnd)
	}

	// One outage three times as large as the others, after which RSS settles
	// 2 MiB higher and stays: a high-water mark, not growth.
	step := soakRun600(0, 0, 0)
	for i := range step.Samples {
		p := &step.Samples[i]
		if p.T >= 360 && p.T < 372 {
			p.RSSMiB = 25 + 3*(p.RSSMiB-25)
		}
		if p.T >= 372 {
			p.RSSMiB += 2
		}
	}
	hw := summarize(step)
	t.Logf("high-water step: steady slope %.4f, cycles %+v", hw.SteadyRSSSlope, hw.Cycles)
	if !hw.FlatRSS || !hw.Flat || hw.SteadyRSSSlope <= 0 {
		t.Fatalf("high-water step judged %+v", hw)
	}

	// The live heap, when sampled, is what counts: here the heap objects grow
	// (garbage) while the live heap, noisy, does not.
	live := soakRun600(0, 0.1, 0)
	for i := range live.Samples {
		live.Samples[i].LiveHeapMiB = 6 + float64(i%7)/2 // a sawtooth, no trend
	}
	lv := summarize(live)
	t.Logf("live heap flat, noisy: slope %.4f ± %.4f", lv.SteadyJudgedSlope, lv.SteadyJudgedSE2)
	if lv.HeapKind != "live heap" || !lv.FlatHeap || !lv.Flat || lv.SteadyJudgedSE2 == 0 {
		t.Fatalf("noisy flat live heap judged %+v", lv)
	}
	for i := range live.Samples {
		live.Samples[i].LiveHeapMiB += 0.1 * live.Samples[i].T / 60 // now it grows 6 MiB an hour
	}
	if lv := summarize(live); lv.FlatHeap || lv.Flat {
		t.Fatalf("growing live heap (slope %.4f ± %.4f) judged flat", lv.SteadyJudgedSlope, lv.SteadyJudgedSE2)
	}

	gleak := summarize(soakRun600(0, 0, 1)) // one goroutine more a minute
	if gleak.FlatGoroutines || gleak.Flat || math.Abs(gleak.SteadyGoroutineSlope-1) > 0.05 {
		t.Fatalf("goroutine leak judged %+v", gleak)
	}
}

func TestSummarizeWithoutSamplesIsNotFlat(t *testing.T) {
	s := summarize(soakResult{Spec: soakSpec{Rate: 1, Duration: time.Minute, Warmup: 30 * time.Second}})
	if s.Flat || s.FitSamples != 0 {
		t.Fatalf("%+v", s)
	}
}

func TestSoakSpecCheckDefaultsWarmupAndRefusesNonsense(t *testing.T) {
	s := soakSpec{Rate: 200, MinSize: 1024, MaxSize: 65536, Duration: 10 * time.Minute, Restart: 2 * time.Minute}
	if err := s.check(); err != nil || s.Warmup != 150*time.Second {
		t.Fatalf("err %v warm-up %v, want nil and 2m30s", err, s.Warmup)
	}
	for _, bad := range []soakSpec{
		{Rate: 0, MinSize: 8, MaxSize: 8, Duration: time.Minute},
		{Rate: 1, MinSize: 100, MaxSize: 10, Duration: time.Minute},
		{Rate: 1, MinSize: 8, MaxSize: 8, Duration: time.Second},
		{Rate: 1, MinSize: 8, MaxSize: 8, Duration: time.Minute, Restart: time.Minute}, // warm-up 75s > 60s
		{Rate: 1, MinSize: 8, MaxSize: 8, Duration: time.Minute, Restart: -time.Second},
	} {
		if err := bad.check(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestSoakLedgerCountsEveryOutcome(t *testing.T) {
	spec := soakSpec{Rate: 1, MinSize: 8, MaxSize: 300, Seed: 7}
	l := newSoakLedger(spec, 6)
	again := newSoakLedger(spec, 6)
	for i := range l.sizes {
		if l.sizes[i] != again.sizes[i] || l.sizes[i] < 8 || l.sizes[i] > 300 {
			t.Fatalf("size %d of seq %d: not seeded or out of range", l.sizes[i], i)
		}
	}
	body := func(seq int) []byte { return soakBody(uint64(seq), int(l.sizes[seq])) }
	for i := range 5 {
		l.accepted[i].Store(true)
	}
	deliver := func(b []byte) { l.handle(t.Context(), deliveryOf(b)) }
	deliver(body(0))                                                 // received once
	deliver(body(1))                                                 // received twice: one duplicate
	deliver(body(1))                                                 //
	l.onDrop(producer.Message{Body: body(2)}, "q", producer.Evicted) // dropped
	l.onDrop(producer.Message{Body: body(3)}, "q", producer.Evicted) // dropped yet received
	deliver(body(3))                                                 //
	// seq 4: accepted, nothing else: lost
	deliver(body(5)) // never accepted
	bad := body(0)
	bad[len(bad)-1] ^= 0xff
	deliver(bad) // corrupt
	deliver(body(0)[:7])

	var r soakResult
	l.count(&r)
	want := soakResult{Received: 4, Duplicates: 1, Lost: 1, DroppedAndReceived: 1, Unexpected: 1, Corrupt: 2}
	if r.Received != want.Received || r.Duplicates != want.Duplicates || r.Lost != want.Lost ||
		r.DroppedAndReceived != want.DroppedAndReceived || r.Unexpected != want.Unexpected || r.Corrupt != want.Corrupt {
		t.Fatalf("got %+v\nwant %+v", r, want)
	}
	var bytesWant int64
	for i := range 5 {
		bytesWant += int64(l.sizes[i])
	}
	if r.AcceptedBytes != bytesWant {
		t.Fatalf("accepted bytes %d, want %d", r.AcceptedBytes, bytesWant)
	}
	if n := l.outstanding(); n != 1 {
		t.Fatalf("outstanding %d, want 1 (seq 4)", n)
	}
}

func TestSoakReportSaysNotRunWithTheCommand(t *testing.T) {
	var b strings.Builder
	writeSoak(func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }, loadSoakRuns(t.TempDir(), "REPORT.md"))
	out := b.String()
	for _, want := range []string{"## Soak", "RabbitMQ: not run (`bench/run.sh --soak`)", "LavinMQ: not run (`BROKER=lavinmq bench/run.sh --soak`)"} {
		if !strings.Contains(out, want) {
			t.Errorf("section lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "| broker |") {
		t.Errorf("a table without results:\n%s", out)
	}
}

func TestSoakReportShowsSlopesAccountingAndPlot(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "bench", "results")
	r := soakRun600(1, 0.1, 0)
	r.Machine.Broker = "RabbitMQ 9.9"
	r.Accepted, r.Confirmed, r.Received, r.Duplicates, r.Lost = 120000, 120000, 120000, 42, 0
	r.Restarts[1].Up = 249
	if err := os.MkdirAll(filepath.Join(out, "lavinmq"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeJSON(filepath.Join(out, "soak.json"), r); err != nil { // no summary stored: the report computes it
		t.Fatal(err)
	}
	var b strings.Builder
	writeSoak(func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }, loadSoakRuns(out, filepath.Join(root, "REPORT.md")))
	sec := b.String()
	t.Log(sec)
	for _, want := range []string{
		"| RabbitMQ 9.9 |", "| 120000 (0 MiB) | 120000 | 0 | 0 | 120000 | 42 | 0 |", "4 (10, 9, 10, 10)",
		"| +1.000 |", // the steady RSS slope
		"| heap objects: 8.7 | +0.1000 (± 0.0000) |",                 // the steady heap slope (no live heap in these samples)
		"| **no** (heap grows, RSS grows) |",                         // both leak
		"240–360: 139.2 → 30.5 [12 s]; 360–480: 141.2 → 32.5 [12 s]", // cycles: peak → level
		"![soak, RabbitMQ](bench/results/soak.png)",
		"LavinMQ: not run (`BROKER=lavinmq bench/run.sh --soak`)",
	} {
		if !strings.Contains(sec, want) {
			t.Errorf("section lacks %q", want)
		}
	}

	// LavinMQ's own report (bench/results/lavinmq/REPORT.md) shows its run only, linked from there.
	if err := writeJSON(filepath.Join(out, "lavinmq", "soak.json"), soakRun600(0, 0, 0)); err != nil {
		t.Fatal(err)
	}
	runs := loadSoakRuns(filepath.Join(out, "lavinmq"), filepath.Join(out, "lavinmq", "REPORT.md"))
	if len(runs) != 1 || runs[0].label != "LavinMQ" || runs[0].res == nil || runs[0].png != "soak.png" || !runs[0].res.Summary.Flat {
		t.Fatalf("LavinMQ's report: %+v", runs)
	}
}

func TestSoakPlotIsAPNG(t *testing.T) {
	r := soakRun600(0, 0, 0)
	r.Summary = summarize(r)
	path := filepath.Join(t.TempDir(), "soak.png")
	if err := saveSoakPlot(r, path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) || len(b) < 10_000 {
		t.Fatalf("%d bytes, not a plot", len(b))
	}
}

func deliveryOf(b []byte) consumer.Delivery { return consumer.Delivery{Body: b} }

func TestSoakVerdictFailsOnLossLeaksAndRefusals(t *testing.T) {
	good := soakRun600(0, 0, 0)
	good.Summary = summarize(good)
	good.GoroutinesBefore, good.GoroutinesAfter = 1, 1
	if err := soakVerdict(good); err != nil {
		t.Fatalf("a clean run failed: %v", err)
	}
	for name, spoil := range map[string]func(*soakResult){
		"lost":       func(r *soakResult) { r.Lost = 1 },
		"corrupt":    func(r *soakResult) { r.Corrupt = 1 },
		"refused":    func(r *soakResult) { r.Rejected = 1 },
		"goroutines": func(r *soakResult) { r.GoroutinesAfter = 2 },
		"not flat":   func(r *soakResult) { *r = soakRun600(0, 0, 1); r.Summary = summarize(*r) },
	} {
		r := good
		spoil(&r)
		err := soakVerdict(r)
		t.Logf("%s: %v", name, err)
		if err == nil {
			t.Errorf("%s: passed", name)
		}
	}
}
