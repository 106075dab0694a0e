package metrics_test

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

func labelValue(labels []*dto.LabelPair, name string) string {
	for _, l := range labels {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// sample returns the value of the first series of name whose labels match
// (a histogram's sample count), or -1 when there is none.
func sample(reg *prometheus.Registry, name string, labels map[string]string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		return -1
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for k, v := range labels {
				if labelValue(m.GetLabel(), k) != v {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return -1
}

// value reads one series (selected by its labels) from the registry: a
// counter's or gauge's value, a histogram's sample count.
func value(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	v := sample(reg, name, labels)
	if v < 0 {
		t.Fatalf("series %s%v not found", name, labels)
	}
	return v
}

// histogramSum reads the sample sum of one histogram series.
func histogramSum(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for k, v := range labels {
				if labelValue(m.GetLabel(), k) != v {
					continue next
				}
			}
			return m.GetHistogram().GetSampleSum()
		}
	}
	t.Fatalf("histogram %s%v not found", name, labels)
	return 0
}

// lintClean fails the test for every problem testutil.GatherAndLint finds.
func lintClean(t *testing.T, reg *prometheus.Registry) {
	t.Helper()
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
}

// checkLabels fails the test for a label outside the documented set:
// client_* series carry client (and reason), producer_* and consumer_* series
// carry queue (and reason) only.
func checkLabels(t *testing.T, reg *prometheus.Registry) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		own := "queue"
		if strings.HasPrefix(mf.GetName(), "lavinmq_client_") {
			own = "client"
		}
		for _, metric := range mf.GetMetric() {
			if labelValue(metric.GetLabel(), own) == "" && own == "client" {
				t.Errorf("series %s has no client label", mf.GetName())
			}
			for _, l := range metric.GetLabel() {
				if l.GetName() != own && l.GetName() != "reason" {
					t.Errorf("series %s has label %q; only %s and reason are allowed", mf.GetName(), l.GetName(), own)
				}
			}
		}
	}
}
