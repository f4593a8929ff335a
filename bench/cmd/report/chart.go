package main

import (
	"fmt"
	"image/color"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/flightcache/flightcache/bench"
)

// hitLibs returns the hit path's rows: the floor, then the caches and the
// hit-path-only variants.
func hitLibs() []string {
	libs := []string{"rwmutex-map"}
	for _, l := range bench.Select(bench.HitPath) {
		libs = append(libs, l.Name)
	}
	return libs
}

// hitSeries are the hit path's configurations, one bar per library each.
var hitSeries = []struct {
	dist  string
	procs int
	color color.RGBA
}{
	{"uniform", 1, color.RGBA{R: 0x9e, G: 0xca, B: 0xe1, A: 0xff}},
	{"uniform", 2, color.RGBA{R: 0x31, G: 0x82, B: 0xbd, A: 0xff}},
	{"zipf", 1, color.RGBA{R: 0xfd, G: 0xae, B: 0x6b, A: 0xff}},
	{"zipf", 2, color.RGBA{R: 0xe6, G: 0x55, B: 0x0d, A: 0xff}},
}

// hitChart draws the hit path's median ns/op per library as grouped bars
// and saves it as a PNG.
func hitChart(res *results, path string) error {
	libs := hitLibs()
	p := plot.New()
	p.Title.Text = "Cache hit, b.RunParallel, 10,000 keys loaded (median ns/op, lower is better)"
	p.Y.Label.Text = "ns/op"
	p.Y.Min = 0
	p.Legend.Top = true
	p.Legend.Left = true
	width := vg.Points(14)
	top := 0.0
	any := false
	for i, s := range hitSeries {
		vals := make(plotter.Values, len(libs))
		for j, lib := range libs {
			if st := res.get(id{bench: "Hit", dist: s.dist, lib: lib, procs: s.procs}, "ns/op"); st.ok() {
				vals[j] = st.center
				top = max(top, st.center)
				any = true
			}
		}
		bars, err := plotter.NewBarChart(vals, width)
		if err != nil {
			return err
		}
		bars.Color = s.color
		bars.LineStyle.Width = 0
		bars.Offset = vg.Length(float64(i)-float64(len(hitSeries)-1)/2) * width
		p.Add(bars)
		p.Legend.Add(fmt.Sprintf("%s keys, -cpu %d", s.dist, s.procs), bars)
	}
	if !any {
		return nil // the hit phase did not run
	}
	p.NominalX(libs...)
	p.X.Min, p.X.Max = -0.7, float64(len(libs))-0.3 // room for the outer bars
	p.Y.Max = 1.35 * top                            // room for the legend
	p.Y.Tick.Marker = plot.TickerFunc(func(lo, hi float64) []plot.Tick {
		step := niceStep(hi / 6)
		var ticks []plot.Tick
		for v := 0.0; v <= hi; v += step {
			ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', -1, 64)})
		}
		return ticks
	})
	grid := plotter.NewGrid()
	grid.Vertical.Color = nil
	p.Add(grid)
	return p.Save(10*vg.Inch, 5*vg.Inch, path)
}

// niceStep returns the smallest of 1, 2, 2.5 and 5 times a power of ten
// that is at least x (> 0).
func niceStep(x float64) float64 {
	if x <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 2.5, 5} {
		if m*p >= x {
			return m * p
		}
	}
	return 10 * p
}
