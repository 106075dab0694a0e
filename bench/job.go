package main

import "time"

// job is one sample to run in a worker process.
type job struct {
	Scenario   string        `json:"scenario"`         // baseline, payload, concurrency, consume, burst, slow, timeline, latency, outage, soak
	Variant    string        `json:"variant"`          // what distinguishes rows of a scenario (e.g. "16B confirm")
	Impl       string        `json:"impl"`             // sdk, raw, raw-sync, amqp091-recovery, go-rabbitmq
	Mode       string        `json:"mode"`             // confirm, fire_and_forget
	Size       int           `json:"size"`             // body bytes
	N          int           `json:"n"`                // messages
	Goroutines int           `json:"goroutines"`       // publishing goroutines
	Policy     string        `json:"policy,omitempty"` // burst: drop-oldest, raise, block
	Rate       int           `json:"rate,omitempty"`   // messages per second for paced scenarios
	Duration   time.Duration `json:"duration,omitempty"`
	Percent    int           `json:"percent,omitempty"` // latency: offered rate as a percentage of the raw max measured earlier in the run
	Soak       *soakSpec     `json:"soak,omitempty"`    // the soak scenario's parameters (bench run -soak)
	URL        string        `json:"-"`
	Sample     int           `json:"sample"`
}

// result is what a worker measured, plus the process usage the parent adds.
type result struct {
	Job        job     `json:"job"`
	Msgs       int     `json:"msgs"`
	Seconds    float64 `json:"seconds"`
	MsgPerSec  float64 `json:"msg_per_sec"`
	ConfirmP50 float64 `json:"confirm_p50_ms"`
	ConfirmP95 float64 `json:"confirm_p95_ms"`
	ConfirmP99 float64 `json:"confirm_p99_ms"`
	E2EP50     float64 `json:"e2e_p50_ms"`
	E2EP95     float64 `json:"e2e_p95_ms"`
	E2EP99     float64 `json:"e2e_p99_ms"`
	Accepted   int64   `json:"accepted,omitempty"`
	Rejected   int64   `json:"rejected,omitempty"`
	Dropped    int64   `json:"dropped,omitempty"`
	Confirmed  int64   `json:"confirmed,omitempty"`
	MaxCallMs  float64 `json:"max_call_ms,omitempty"`
	HeldMs     float64 `json:"held_ms,omitempty"` // burst: how long the publishing goroutine was busy
	Series     []point `json:"series,omitempty"`
	Note       string  `json:"note,omitempty"`
	// Open-loop latency (scenario latency): from each message's scheduled
	// send time to its confirm, so a stalled caller is not hidden.
	LatP50  float64 `json:"lat_p50_ms,omitempty"`
	LatP99  float64 `json:"lat_p99_ms,omitempty"`
	LatMax  float64 `json:"lat_max_ms,omitempty"`
	Offered float64 `json:"offered_msg_per_sec,omitempty"`
	// Outage accounting (scenario outage), per message ID.
	Failed            int64   `json:"failed,omitempty"`              // the caller was told it failed (nack, OnDrop, error given up on)
	Received          int64   `json:"received,omitempty"`            // distinct messages read from the queue afterwards
	Duplicates        int64   `json:"duplicates,omitempty"`          // extra copies read
	Lost              int64   `json:"lost,omitempty"`                // accepted, neither received nor reported failed
	FailedButReceived int64   `json:"failed_but_received,omitempty"` // reported failed, yet in the queue
	Unsettled         int64   `json:"unsettled,omitempty"`           // accepted, no outcome by the end (a confirm that never came)
	CPUSeconds        float64 `json:"cpu_seconds"`
	MaxRSSMB          float64 `json:"max_rss_mb"`
}

// point is one sample of a time series: T seconds since the start.
type point struct {
	T float64 `json:"t"`
	V float64 `json:"v"`
}
