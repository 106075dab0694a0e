package main

import (
	"math"
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
	T          float64 `json:"t"`        // seconds since publishing started
	RSSMiB     float64 `json:"rss_mib"`  // VmRSS of the worker process
	HeapMiB    float64 `json:"heap_mib"` // Go heap objects (runtime/metrics /memory/classes/heap/objects:bytes)
	Goroutines int     `json:"goroutines"`
	Pending    uint64  `json:"pending"` // producer: accepted, not yet confirmed nor dropped
	Confirmed  uint64  `json:"confirmed"`
	Received   uint64  `json:"received"` // deliveries, duplicates included
	Connected  bool    `json:"connected"`
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
	FitFrom              float64 `json:"fit_from_s"` // the fit window, seconds since the start
	FitTo                float64 `json:"fit_to_s"`
	FitSamples           int     `json:"fit_samples"`
	SteadySamples        int     `json:"steady_samples"`
	RSSSlope             float64 `json:"rss_slope_mib_per_min"` // every sample of the window
	RSSIntercept         float64 `json:"rss_intercept_mib"`     // the fitted line at t = 0
	SteadyRSSSlope       float64 `json:"steady_rss_slope_mib_per_min"`
	SteadyRSSIntercept   float64 `json:"steady_rss_intercept_mib"`
	HeapSlope            float64 `json:"heap_slope_mib_per_min"`
	SteadyHeapSlope      float64 `json:"steady_heap_slope_mib_per_min"`
	GoroutineSlope       float64 `json:"goroutine_slope_per_min"`
	GoroutineIntercept   float64 `json:"goroutine_intercept"`
	SteadyGoroutineSlope float64 `json:"steady_goroutine_slope_per_min"`
	RSSStart             float64 `json:"rss_start_mib"`    // median of the steady samples of the window's first 30 s
	RSSEnd               float64 `json:"rss_end_mib"`      // and of its last 30 s
	RSSMedian            float64 `json:"rss_median_mib"`   // of every sample of the window
	RSSPeak              float64 `json:"rss_peak_mib"`     // largest sample of the whole run
	GoroutinesStart      float64 `json:"goroutines_start"` // steady samples, as RSSStart
	GoroutinesEnd        float64 `json:"goroutines_end"`
	FlatRSS              bool    `json:"flat_rss"`        // SteadyRSSSlope × 60 min < flatRSSShare × RSSMedian
	FlatGoroutines       bool    `json:"flat_goroutines"` // GoroutinesEnd <= GoroutinesStart
	Flat                 bool    `json:"flat"`            // both
}

// flatRSSShare is the flatness bound: RSS is flat when the steady samples'
// fitted line grows by less than this share of the window's median RSS per
// hour (with 25 MiB, 6 MiB an hour: at 200 msg/s, 9 bytes per message).
const flatRSSShare = 0.25

// summarize fits the samples of r taken from the warm-up to the end of
// publishing.
func summarize(r soakResult) soakSummary {
	from := r.Spec.Warmup.Seconds()
	to := r.Spec.Duration.Seconds()
	var all, steady soakSeries
	s := soakSummary{FitFrom: from, FitTo: to}
	for _, p := range r.Samples {
		s.RSSPeak = max(s.RSSPeak, p.RSSMiB)
		if p.T < from || p.T > to {
			continue
		}
		all.add(p)
		if p.Connected && p.Pending <= uint64(r.Spec.Rate) {
			steady.add(p)
		}
	}
	s.FitSamples, s.SteadySamples = len(all.t), len(steady.t)
	if len(all.t) < 2 || len(steady.t) < 2 {
		return s
	}
	s.RSSSlope, s.RSSIntercept = leastSquares(all.t, all.rss)
	s.SteadyRSSSlope, s.SteadyRSSIntercept = leastSquares(steady.t, steady.rss)
	s.HeapSlope, _ = leastSquares(all.t, all.heap)
	s.SteadyHeapSlope, _ = leastSquares(steady.t, steady.heap)
	s.GoroutineSlope, s.GoroutineIntercept = leastSquares(all.t, all.g)
	s.SteadyGoroutineSlope, _ = leastSquares(steady.t, steady.g)
	s.RSSMedian = median(all.rss)
	s.RSSStart, s.RSSEnd = edgeMedians(steady.t, steady.rss, 0.5)
	s.GoroutinesStart, s.GoroutinesEnd = edgeMedians(steady.t, steady.g, 0.5)
	s.FlatRSS = s.SteadyRSSSlope*60 < flatRSSShare*s.RSSMedian
	s.FlatGoroutines = s.GoroutinesEnd <= s.GoroutinesStart
	s.Flat = s.FlatRSS && s.FlatGoroutines
	return s
}

// soakSeries holds samples column by column, time in minutes.
type soakSeries struct{ t, rss, heap, g []float64 }

func (s *soakSeries) add(p soakSample) {
	s.t = append(s.t, p.T/60)
	s.rss = append(s.rss, p.RSSMiB)
	s.heap = append(s.heap, p.HeapMiB)
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
