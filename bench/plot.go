package main

import (
	"flag"
	"fmt"
	"image/color"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

func plotCmd(args []string) error {
	fs := flag.NewFlagSet("plot", flag.ExitOnError)
	out := outFlag(fs)
	_ = fs.Parse(args)
	if err := plotAll(*out); err != nil {
		return err
	}
	return replotSoak(*out)
}

var (
	sdkColor = color.RGBA{R: 31, G: 119, B: 180, A: 255}
	rawColor = color.RGBA{R: 255, G: 127, B: 14, A: 255}
	grey     = color.RGBA{R: 120, G: 120, B: 120, A: 255}
)

// plotAll draws the report's PNGs from bench.json.
func plotAll(out string) error {
	var results []result
	if err := readJSON(filepath.Join(out, "bench.json"), &results); err != nil {
		return err
	}
	aggs := aggregates(results)
	for name, f := range map[string]func([]aggregate) (*plot.Plot, error){
		"ratio.png":    plotRatios,
		"latency.png":  plotLatency,
		"timeline.png": func(a []aggregate) (*plot.Plot, error) { return plotSeries(a, "timeline", "confirmed per 100 ms") },
		"slow.png":     func(a []aggregate) (*plot.Plot, error) { return plotSeries(a, "slow", "queue depth (messages)") },
	} {
		p, err := f(aggs)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := p.Save(22*vg.Centimeter, 12*vg.Centimeter, filepath.Join(out, name)); err != nil {
			return err
		}
	}
	return nil
}

// plotRatios: SDK msg/s divided by raw amqp091-go msg/s, one bar per row.
func plotRatios(aggs []aggregate) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "lavinmq-go throughput relative to plain amqp091-go (same work, same run)"
	p.Y.Label.Text = "SDK msg/s ÷ raw msg/s"
	var vals plotter.Values
	var names []string
	for _, a := range aggs {
		if a.Impl == "sdk" && a.Ratio > 0 {
			vals = append(vals, a.Ratio)
			names = append(names, a.Scenario+"\n"+a.Variant)
		}
	}
	bars, err := plotter.NewBarChart(vals, vg.Points(14))
	if err != nil {
		return nil, err
	}
	bars.Color = sdkColor
	p.Add(bars)
	one := plotter.NewFunction(func(float64) float64 { return 1 })
	one.Color = grey
	one.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(one)
	p.NominalX(names...)
	p.X.Tick.Label.Rotation = 0.6
	p.X.Tick.Label.XAlign = -1
	p.X.Tick.Label.Font.Size = vg.Points(6)
	p.Y.Min = 0
	return p, nil
}

// plotLatency: publish-to-confirm percentiles of the 16-byte Confirm baseline.
func plotLatency(aggs []aggregate) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "publish-to-confirm latency, confirm 16B baseline"
	p.Y.Label.Text = "ms"
	impls := []string{}
	var rows []aggregate
	for _, a := range aggs {
		if a.Scenario == "baseline" && a.Variant == "confirm 16B" {
			rows = append(rows, a)
			impls = append(impls, a.Impl)
		}
	}
	w := vg.Points(12)
	for i, pct := range []struct {
		name string
		get  func(aggregate) float64
	}{{"p50", func(a aggregate) float64 { return a.ConfirmP50 }}, {"p95", func(a aggregate) float64 { return a.ConfirmP95 }},
		{"p99", func(a aggregate) float64 { return a.ConfirmP99 }}} {
		var vals plotter.Values
		for _, a := range rows {
			vals = append(vals, pct.get(a))
		}
		b, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return nil, err
		}
		b.Color = []color.Color{sdkColor, rawColor, grey}[i]
		b.Offset = vg.Length(i-1) * w
		p.Add(b)
		p.Legend.Add(pct.name, b)
	}
	p.Legend.Top = true
	p.NominalX(impls...)
	return p, nil
}

// plotSeries draws the first sample's time series of each impl of a scenario.
func plotSeries(aggs []aggregate, scenario, ylabel string) (*plot.Plot, error) {
	p := plot.New()
	p.X.Label.Text = "seconds"
	p.Y.Label.Text = ylabel
	for _, a := range aggs {
		if a.Scenario != scenario || len(a.Results) == 0 {
			continue
		}
		p.Title.Text = scenario + ": " + a.Variant
		s := a.Results[0].Series
		xy := make(plotter.XYs, len(s))
		for i, pt := range s {
			xy[i].X, xy[i].Y = pt.T, pt.V
		}
		l, err := plotter.NewLine(xy)
		if err != nil {
			return nil, err
		}
		l.Color = sdkColor
		if a.Impl != "sdk" {
			l.Color = rawColor
		}
		p.Add(l)
		p.Legend.Add(map[bool]string{true: "lavinmq-go", false: "raw amqp091-go"}[a.Impl == "sdk"], l)
	}
	p.Legend.Top = true
	return p, nil
}
