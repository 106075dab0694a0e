package main

import (
	"errors"
	"fmt"
	"image/color"
	"io/fs"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

var (
	fitColor    = color.RGBA{R: 214, G: 39, B: 40, A: 255}
	steadyColor = color.RGBA{R: 44, G: 160, B: 44, A: 255}
	liveColor   = color.RGBA{R: 148, G: 103, B: 189, A: 255}
)

// saveSoakPlot draws the soak run as one PNG of two panels sharing the time
// axis: RSS and Go heap on top, goroutines below, each with its
// least-squares lines over the fit window (RSS: every sample, and the steady
// ones between outages); dashed grey lines mark the broker restarts. Same gonum plot, palette and size as the report's other plots.
func saveSoakPlot(r soakResult, path string) error {
	s := r.Summary
	top := plot.New()
	top.Title.Text = fmt.Sprintf("soak: %d msg/s, %d B–%d KiB bodies, broker restart every %v (%s)",
		r.Spec.Rate, r.Spec.MinSize, r.Spec.MaxSize>>10, r.Spec.Restart, r.Machine.Broker)
	top.Y.Label.Text = "MiB"
	bottom := plot.New()
	bottom.X.Label.Text = "seconds"
	bottom.Y.Label.Text = "goroutines"
	rss, heap, gs := make(plotter.XYs, len(r.Samples)), make(plotter.XYs, len(r.Samples)), make(plotter.XYs, len(r.Samples))
	var live plotter.XYs
	peak, gpeak := 0.0, 0.0
	for i, p := range r.Samples {
		rss[i] = plotter.XY{X: p.T, Y: p.RSSMiB}
		heap[i] = plotter.XY{X: p.T, Y: p.HeapMiB}
		gs[i] = plotter.XY{X: p.T, Y: float64(p.Goroutines)}
		if p.LiveHeapMiB > 0 {
			live = append(live, plotter.XY{X: p.T, Y: p.LiveHeapMiB})
		}
		peak, gpeak = max(peak, p.RSSMiB), max(gpeak, float64(p.Goroutines))
	}
	fit := func(slope, intercept float64) plotter.XYs {
		return plotter.XYs{{X: s.FitFrom, Y: intercept + slope*s.FitFrom/60}, {X: s.FitTo, Y: intercept + slope*s.FitTo/60}}
	}
	type series struct {
		p     *plot.Plot
		xy    plotter.XYs
		c     color.Color
		dash  bool
		label string
	}
	lines := []series{{top, rss, sdkColor, false, "RSS"}, {top, heap, rawColor, false, "Go heap objects"}}
	if len(live) > 1 {
		lines = append(lines, series{top, live, liveColor, false, "Go live heap (last GC)"})
	}
	for _, l := range append(lines, []series{
		{top, fit(s.RSSSlope, s.RSSIntercept), fitColor, true, fmt.Sprintf("RSS fit, every sample: %+.3f MiB/min", s.RSSSlope)},
		{top, fit(s.SteadyRSSSlope, s.SteadyRSSIntercept), steadyColor, true, fmt.Sprintf("RSS fit, steady samples: %+.3f MiB/min", s.SteadyRSSSlope)},
		{bottom, gs, sdkColor, false, "goroutines"},
		{bottom, fit(s.GoroutineSlope, s.GoroutineIntercept), fitColor, true, fmt.Sprintf("fit: %+.3f /min", s.GoroutineSlope)},
	}...) {
		line, err := plotter.NewLine(l.xy)
		if err != nil {
			return err
		}
		line.Color = l.c
		if l.dash {
			line.Width = vg.Points(2)
			line.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
		}
		l.p.Add(line)
		l.p.Legend.Add(l.label, line)
	}
	for _, rs := range r.Restarts {
		for _, pm := range []struct {
			p *plot.Plot
			y float64
		}{{top, peak}, {bottom, gpeak}} {
			line, err := plotter.NewLine(plotter.XYs{{X: rs.At, Y: 0}, {X: rs.At, Y: pm.y}})
			if err != nil {
				return err
			}
			line.Color = grey
			line.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
			pm.p.Add(line)
		}
	}
	top.Y.Max, bottom.Y.Max = peak*1.3, gpeak*1.4 // room for the legend above the lines
	for _, p := range []*plot.Plot{top, bottom} {
		p.Y.Min = 0
		p.Legend.Top = true
		p.Legend.Left = true
		p.X.Min, p.X.Max = 0, max(r.Spec.Duration.Seconds(), lastT(r.Samples))
	}
	img := vgimg.New(22*vg.Centimeter, 16*vg.Centimeter)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadY: vg.Points(6), PadTop: vg.Points(4), PadBottom: vg.Points(4), PadLeft: vg.Points(4), PadRight: vg.Points(8)}
	cs := plot.Align([][]*plot.Plot{{top}, {bottom}}, tiles, dc)
	top.Draw(cs[0][0])
	bottom.Draw(cs[1][0])
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// replotSoak recomputes the summary of dir/soak.json from its samples and
// redraws dir/soak.png (bench plot); nothing when there is no soak.json.
func replotSoak(dir string) error {
	var r soakResult
	if err := readJSON(filepath.Join(dir, "soak.json"), &r); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	r.Summary = summarize(r)
	if err := writeJSON(filepath.Join(dir, "soak.json"), r); err != nil {
		return err
	}
	return saveSoakPlot(r, filepath.Join(dir, "soak.png"))
}

func lastT(s []soakSample) float64 {
	if len(s) == 0 {
		return 0
	}
	return s[len(s)-1].T
}
