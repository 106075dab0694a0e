package main

import (
	"math"
	"slices"
	"time"
)

// soakSpec is what the soak scenario runs: Rate messages a second with body
// sizes drawn uniformly from [MinSize, MaxSize] by a PCG generator seeded with
// Seed, for Duration, with a broker restart every Restart. Samples taken
// before Warmup are left out of the slope fits.
type soakSpec struct {
	Rate     int           `json:"rate"`
	MinSize  int           `json:"min_size"`
	MaxSize  int           `json:"max_size"`
	Seed     uint64        `json:"seed"`
	Duration time.Duration `json:"duration"`
	Restart  time.Duration `json:"restart"`
	Warmup   time.Duration `json:"warmup"`
}

// soakSample is one sample of the worker, taken every second.
type soakSample struct {
	T       float64 `json:"t"`        // seconds since publishing started
	RSSMiB  float64 `json:"rss_mib"`  // VmRSS of the worker process
	HeapMiB float64 `json:"heap_mib"` // Go heap objects (runtime/metrics /memory/classes/heap/objects:bytes)
	// LiveHeapMiB is the heap the last GC found live (/gc/heap/live:bytes):
	// what the process holds, without the garbage of the current cycle.
	LiveHeapMiB float64 `json:"live_heap_mib,omitempty"`
	Goroutines  int     `json:"goroutines"`
	Pending     uint64  `json:"pending"` // producer: accepted, not yet confirmed nor dropped
	Confirmed   uint64  `json:"confirmed"`
	Received    uint64  `json:"received"` // deliveries, duplicates included
	Connected   bool    `json:"connected"`
}

// soakRestart is one broker restart, in seconds since publishing started:
// when the restart began and when the script saw the broker answer again.
type soakRestart struct {
	At float64 `json:"at"`
	Up float64 `json:"up"`
}

// soakResult is what a soak worker measured and how every message ended.
type soakResult struct {
	Machine  machine       `json:"machine"`
	Spec     soakSpec      `json:"spec"`
	Samples  []soakSample  `json:"samples"`
	Restarts []soakRestart `json:"restarts"`

	Accepted           int64            `json:"accepted"`             // Publish returned nil
	Rejected           int64            `json:"rejected"`             // Publish returned an error
	AcceptedBytes      int64            `json:"accepted_bytes"`       // bodies of the accepted messages
	Confirmed          int64            `json:"confirmed"`            // producer Stats at the end
	Dropped            int64            `json:"dropped"`              // reported through OnDrop
	DroppedBy          map[string]int64 `json:"dropped_by,omitempty"` // by reason
	Resent             int64            `json:"resent"`
	Received           int64            `json:"received"`             // distinct sequence numbers consumed
	Duplicates         int64            `json:"duplicates"`           // deliveries beyond the first of a sequence number
	Lost               int64            `json:"lost"`                 // accepted, never received, not reported dropped
	DroppedAndReceived int64            `json:"dropped_and_received"` // reported dropped yet delivered (should be 0)
	Corrupt            int64            `json:"corrupt"`              // deliveries whose body is not the one published
	Unexpected         int64            `json:"unexpected"`           // deliveries of a sequence number never accepted
	QueueLeft          int              `json:"queue_left"`           // messages left in the queue when the consumer stopped
	GoroutinesBefore   int              `json:"goroutines_before"`    // before the client was created
	GoroutinesAfter    int              `json:"goroutines_after"`     // after consumer, producer and client closed
	MaxRSSMB           float64          `json:"max_rss_mb"`           // the worker's peak RSS (getrusage)
	Note               string           `json:"note,omitempty"`

	Summary soakSummary `json:"summary"` // computed from Samples by summarize
}

// soakSummary is the flatness verdict of a soak run, from its samples after
// the warm-up (the fit window). Slopes are least-squares fits over every
// sample of the window, which includes the outages' backlog peaks, and over
// its steady samples only (connected, under a second's worth of messages
// pending), which is where a leak shows: the level the process returns to
// between outages.
type soakSummary struct {
	FitFrom            float64 `json:"fit_from_s"` // the fit window, seconds since the start
	FitTo              float64 `json:"fit_to_s"`
	FitSamples         int     `json:"fit_samples"`
	SteadySamples      int     `json:"steady_samples"`
	RSSSlope           float64 `json:"rss_slope_mib_per_min"` // every sample of the window
	RSSIntercept       float64 `json:"rss_intercept_mib"`     // the fitted line at t = 0
	SteadyRSSSlope     float64 `json:"steady_rss_slope_mib_per_min"`
	SteadyRSSIntercept float64 `json:"steady_rss_intercept_mib"`
	HeapSlope          float64 `json:"heap_slope_mib_per_min"`
	SteadyHeapSlope    float64 `json:"steady_heap_slope_mib_per_min"`
	// The heap the verdict uses: the live heap when the samples have it
	// (heap objects otherwise), its steady slope with twice its standard
	// error, and its median.
	HeapKind             string      `json:"heap_kind"`
	SteadyJudgedSlope    float64     `json:"steady_judged_heap_slope_mib_per_min"`
	SteadyJudgedSE2      float64     `json:"steady_judged_heap_slope_2se"`
	JudgedHeapMedian     float64     `json:"judged_heap_median_mib"`
	GoroutineSlope       float64     `json:"goroutine_slope_per_min"`
	GoroutineIntercept   float64     `json:"goroutine_intercept"`
	SteadyGoroutineSlope float64     `json:"steady_goroutine_slope_per_min"`
	RSSStart             float64     `json:"rss_start_mib"`  // median of the steady samples of the window's first 30 s
	RSSEnd               float64     `json:"rss_end_mib"`    // and of its last 30 s
	RSSMedian            float64     `json:"rss_median_mib"` // of every sample of the window
	HeapMedian           float64     `json:"heap_median_mib"`
	RSSPeak              float64     `json:"rss_peak_mib"`     // largest sample of the whole run
	GoroutinesStart      float64     `json:"goroutines_start"` // steady samples, as RSSStart
	GoroutinesEnd        float64     `json:"goroutines_end"`
	Cycles               []soakCycle `json:"cycles"`          // the run cut at each restart
	FlatHeap             bool        `json:"flat_heap"`       // (SteadyJudgedSlope − SteadyJudgedSE2) × 60 min < flatShare × JudgedHeapMedian
	FlatRSS              bool        `json:"flat_rss"`        // no cycle's level rises, except after a new, higher outage peak (see rssBounded)
	FlatGoroutines       bool        `json:"flat_goroutines"` // GoroutinesEnd <= GoroutinesStart
	Flat                 bool        `json:"flat"`            // all three
}

// Flatness bounds. The Go heap (what the SDK holds; the live heap when
// sampled) is flat unless its steady line grows, by more than twice the
// slope's standard error, faster than flatShare of its median per hour: with
// a 7 MiB heap, 1.75 MiB an hour, at 200 msg/s 2.5 bytes per message. RSS also
// keeps what the runtime retained after the largest backlog (heap metadata,
// pages not yet returned), so it may step up after an outage whose peak is
// the largest so far (by more than newPeakShare), and must not rise by more
// than levelSlackMiB from one cycle to the next otherwise.
const (
	flatShare     = 0.25
	newPeakShare  = 0.10
	levelSlackMiB = 1.0
)

// soakCycle is the run between two restarts (the first from the start, the
// last to the end): the largest RSS sample of it (its outage's peak) and
// the RSS and heap it settles to (medians of the steady samples of its
// second half).
type soakCycle struct {
	From      float64 `json:"from_s"`
	To        float64 `json:"to_s"`
	PeakRSS   float64 `json:"peak_rss_mib"`
	LevelRSS  float64 `json:"level_rss_mib"`
	LevelHeap float64 `json:"level_heap_mib"`
	// CaughtUp is how long after the restart the client was connected with
	// its backlog published (the first steady sample); 0 for the first cycle
	// or when it never was.
	CaughtUp float64 `json:"caught_up_s,omitempty"`
}

// cycles cuts r's samples at each restart.
func cycles(r soakResult) []soakCycle {
	cuts := []float64{0}
	for _, rs := range r.Restarts {
		cuts = append(cuts, rs.At)
	}
	cuts = append(cuts, r.Spec.Duration.Seconds())
	var out []soakCycle
	for i := 0; i+1 < len(cuts); i++ {
		c := soakCycle{From: cuts[i], To: cuts[i+1]}
		var rss, heap []float64
		for _, p := range r.Samples {
			if p.T < c.From || p.T >= c.To {
				continue
			}
			c.PeakRSS = max(c.PeakRSS, p.RSSMiB)
			if i > 0 && c.CaughtUp == 0 && p.T > r.Restarts[i-1].Up && steady(r.Spec, p) {
				c.CaughtUp = p.T - c.From
			}
			if p.T >= (c.From+c.To)/2 && steady(r.Spec, p) {
				rss, heap = append(rss, p.RSSMiB), append(heap, p.HeapMiB)
			}
		}
		c.LevelRSS, c.LevelHeap = median(rss), median(heap)
		out = append(out, c)
	}
	return out
}

// rssBounded: from the first cycle after the warm-up on, no cycle settles
// more than levelSlackMiB above the one before, unless its outage peak was
// the largest of the outages so far by more than newPeakShare (a new
// high-water mark, not growth with time).
func rssBounded(cs []soakCycle, warmup float64) bool {
	maxPeak, prev := 0.0, 0.0
	for i, c := range cs {
		if c.LevelRSS > 0 { // else no steady sample in its second half: nothing to compare
			if prev > 0 && (c.From+c.To)/2 >= warmup && c.LevelRSS > prev+levelSlackMiB && c.PeakRSS <= maxPeak*(1+newPeakShare) {
				return false
			}
			prev = c.LevelRSS
		}
		if i > 0 { // the first cycle has no outage: its peak is the start-up's
			maxPeak = max(maxPeak, c.PeakRSS)
		}
	}
	return true
}

// steady: connected, and less than a second's worth of messages pending.
func steady(spec soakSpec, p soakSample) bool {
	return p.Connected && p.Pending <= uint64(spec.Rate)
}

// summarize fits the samples of r taken from the warm-up to the end of
// publishing.
func summarize(r soakResult) soakSummary {
	from := r.Spec.Warmup.Seconds()
	to := r.Spec.Duration.Seconds()
	var all, steadyS soakSeries
	s := soakSummary{FitFrom: from, FitTo: to}
	for _, p := range r.Samples {
		s.RSSPeak = max(s.RSSPeak, p.RSSMiB)
		if p.T < from || p.T > to {
			continue
		}
		all.add(p)
		if steady(r.Spec, p) {
			steadyS.add(p)
		}
	}
	s.FitSamples, s.SteadySamples = len(all.t), len(steadyS.t)
	if len(all.t) < 2 || len(steadyS.t) < 2 {
		return s
	}
	s.RSSSlope, s.RSSIntercept = leastSquares(all.t, all.rss)
	s.SteadyRSSSlope, s.SteadyRSSIntercept = leastSquares(steadyS.t, steadyS.rss)
	s.HeapSlope, _ = leastSquares(all.t, all.heap)
	s.SteadyHeapSlope, _ = leastSquares(steadyS.t, steadyS.heap)
	s.GoroutineSlope, s.GoroutineIntercept = leastSquares(all.t, all.g)
	s.SteadyGoroutineSlope, _ = leastSquares(steadyS.t, steadyS.g)
	s.RSSMedian, s.HeapMedian = median(all.rss), median(all.heap)
	s.RSSStart, s.RSSEnd = edgeMedians(steadyS.t, steadyS.rss, 0.5)
	s.GoroutinesStart, s.GoroutinesEnd = edgeMedians(steadyS.t, steadyS.g, 0.5)
	s.Cycles = cycles(r)
	s.HeapKind, s.JudgedHeapMedian = "heap objects", s.HeapMedian
	judged := steadyS.heap
	if slices.ContainsFunc(steadyS.live, func(v float64) bool { return v > 0 }) {
		s.HeapKind, s.JudgedHeapMedian, judged = "live heap", median(all.live), steadyS.live
	}
	var icpt float64
	s.SteadyJudgedSlope, icpt = leastSquares(steadyS.t, judged)
	s.SteadyJudgedSE2 = 2 * slopeSE(steadyS.t, judged, s.SteadyJudgedSlope, icpt)
	s.FlatHeap = (s.SteadyJudgedSlope-s.SteadyJudgedSE2)*60 < flatShare*s.JudgedHeapMedian
	s.FlatRSS = rssBounded(s.Cycles, from)
	if len(r.Restarts) == 0 { // no outages: the steady line itself
		s.FlatRSS = s.SteadyRSSSlope*60 < flatShare*s.RSSMedian
	}
	s.FlatGoroutines = s.GoroutinesEnd <= s.GoroutinesStart
	s.Flat = s.FlatHeap && s.FlatRSS && s.FlatGoroutines
	return s
}

// soakSeries holds samples column by column, time in minutes.
type soakSeries struct{ t, rss, heap, live, g []float64 }

func (s *soakSeries) add(p soakSample) {
	s.t = append(s.t, p.T/60)
	s.rss = append(s.rss, p.RSSMiB)
	s.heap = append(s.heap, p.HeapMiB)
	s.live = append(s.live, p.LiveHeapMiB)
	s.g = append(s.g, float64(p.Goroutines))
}

// leastSquares fits y = slope·x + intercept. With fewer than two points or
// all x equal it returns 0, mean(y).
func leastSquares(x, y []float64) (slope, intercept float64) {
	n := min(len(x), len(y))
	if n == 0 {
		return 0, 0
	}
	var mx, my float64
	for i := range n {
		mx += x[i]
		my += y[i]
	}
	mx /= float64(n)
	my /= float64(n)
	var sxy, sxx float64
	for i := range n {
		sxy += (x[i] - mx) * (y[i] - my)
		sxx += (x[i] - mx) * (x[i] - mx)
	}
	if sxx == 0 || math.IsNaN(sxx) {
		return 0, my
	}
	slope = sxy / sxx
	return slope, my - slope*mx
}

// slopeSE is the standard error of the slope of a least-squares fit (0 with
// fewer than three points).
func slopeSE(x, y []float64, slope, intercept float64) float64 {
	n := min(len(x), len(y))
	if n < 3 {
		return 0
	}
	var mx float64
	for i := range n {
		mx += x[i]
	}
	mx /= float64(n)
	var res, sxx float64
	for i := range n {
		d := y[i] - (slope*x[i] + intercept)
		res += d * d
		sxx += (x[i] - mx) * (x[i] - mx)
	}
	if sxx == 0 {
		return 0
	}
	return math.Sqrt(res / float64(n-2) / sxx)
}

// edgeMedians returns the medians of y over the first and the last span (in
// x's unit) of x, which is increasing.
func edgeMedians(x, y []float64, span float64) (first, last float64) {
	if len(x) == 0 {
		return 0, 0
	}
	var a, b []float64
	for i := range x {
		if x[i] <= x[0]+span {
			a = append(a, y[i])
		}
		if x[i] >= x[len(x)-1]-span {
			b = append(b, y[i])
		}
	}
	return median(a), median(b)
}
