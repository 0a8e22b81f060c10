package report

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/qpipe/qpipe/internal/atomicfile"
	"github.com/qpipe/qpipe/pipeline"
)

//go:embed page.css
var css string

//go:embed page.html
var pageHTML string

var page = template.Must(template.New("page").Funcs(template.FuncMap{
	"size":  size,
	"num":   num,
	"fixed": fixed,
	"db":    db,
	"sig":   sig,
	"value": value,
	"exact": exact,
	"pct":   func(x float64) string { return fixed(100*x, 1) },
	"short": func(s string) string {
		if len(s) > 12 {
			return s[:12] + "…"
		}
		return s
	},
	"layer": func(l *int) string {
		if l == nil {
			return "–"
		}
		return fmt.Sprint(*l)
	},
	"css":   func() template.CSS { return template.CSS(css) },
	"f64":   func(p *float64) float64 { return *p },
	"f64ok": func(p *bool) bool { return *p },
}).Parse(pageHTML))

// HTML writes the page for a run report: data is what `qpipe run --json`
// printed. A report it cannot read is an error saying where.
func HTML(w io.Writer, data []byte) error {
	r, err := parse(data)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := page.Execute(&b, view(r)); err != nil {
		return err
	}
	_, err = w.Write(b.Bytes())
	return err
}

type pageView struct {
	Title   string
	Lede    string
	Jobs    []jobView
	Outputs int
}

type jobView struct {
	*job
	ID       string
	Outputs  []outputView
	Tradeoff template.HTML
}

type outputView struct {
	*output
	ID          string
	InputBytes  int64
	Ratio       float64 // output / input bytes
	SizeChart   template.HTML
	SizeRows    []sizeRow
	SQNRChart   template.HTML
	SensChart   template.HTML
	Median      float64
	Worst       *pipeline.TensorMetric
	Budget      *pipeline.BudgetReport
	BudgetChart template.HTML
	Presets     []presetRow
	// ScaleSearch is set when some tensor's scales were searched (its
	// min-max SQNR is then shown beside).
	ScaleSearch bool
}

type sizeRow struct {
	pipeline.SizeShare
	Color string
	Ratio float64
}

type presetRow struct {
	pipeline.PresetPoint
	Chosen bool
}

func view(r *run) pageView {
	pv := pageView{}
	var names []string
	for i, j := range r.Jobs {
		jv := jobView{job: j, ID: fmt.Sprintf("job-%d", i+1)}
		for k, o := range j.Outputs {
			jv.Outputs = append(jv.Outputs, outputViewOf(jv.ID, k, j, o))
			pv.Outputs++
		}
		pv.Jobs = append(pv.Jobs, jv)
		name := j.Name
		if name == "" {
			name = j.File
		}
		names = append(names, name)
	}
	pv.Title = "qpipe report"
	if len(names) > 0 {
		pv.Title = strings.Join(names, ", ") + " — qpipe report"
	}
	pv.Lede = fmt.Sprintf("%d job%s, %d output%s", len(r.Jobs), plural(len(r.Jobs)), pv.Outputs, plural(pv.Outputs))
	return pv
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func outputViewOf(jobID string, k int, j *job, o *output) outputView {
	ov := outputView{output: o, ID: fmt.Sprintf("%s-out-%d", jobID, k+1), InputBytes: j.InputBytes, Budget: o.Budget}
	ov.Ratio = ratio(o.Bytes, j.InputBytes)
	if len(o.Sizes) > 0 {
		ov.SizeChart = sizeChart(j.InputBytes, o.OutputReport)
		var roles []string
		for _, s := range o.Sizes {
			roles = append(roles, s.Role)
		}
		pal := palette(uniqueRoles(roles))
		for _, s := range o.Sizes {
			ov.SizeRows = append(ov.SizeRows, sizeRow{SizeShare: s, Color: pal[s.Role], Ratio: ratio(s.BytesOut, s.BytesIn)})
		}
		sort.SliceStable(ov.SizeRows, func(a, b int) bool { return roleLess(ov.SizeRows[a].Role, ov.SizeRows[b].Role) })
	}
	for _, t := range o.Tensors {
		if t.Scales != "" || t.SQNRMinMax != nil {
			ov.ScaleSearch = true
		}
	}
	ov.SQNRChart = layerChart(o.Tensors, sqnrMeasure)
	ov.SensChart = layerChart(o.Tensors, sensitivityMeasure)
	if n := len(o.Tensors); n > 0 {
		v := make([]float64, n)
		worst := 0
		for i := range o.Tensors {
			v[i] = o.Tensors[i].SQNR
			if v[i] < o.Tensors[worst].SQNR {
				worst = i
			}
		}
		sort.Float64s(v)
		ov.Median = v[n/2]
		if n%2 == 0 {
			ov.Median = (v[n/2-1] + v[n/2]) / 2
		}
		ov.Worst = &o.Tensors[worst].TensorMetric
	}
	if b := o.Budget; b != nil {
		pts := []point{{label: "this mix (" + o.Recipe + ")", bytes: b.PredictedBytes, kl: b.MeasuredKL, chosen: true}}
		for _, p := range b.Presets {
			pts = append(pts, point{label: p.Recipe, bytes: p.Bytes, kl: p.KL})
			ov.Presets = append(ov.Presets, presetRow{PresetPoint: p})
		}
		ov.Presets = append(ov.Presets, presetRow{PresetPoint: pipeline.PresetPoint{Recipe: o.Recipe, Bytes: b.PredictedBytes, KL: b.MeasuredKL}, Chosen: true})
		sort.SliceStable(ov.Presets, func(a, c int) bool { return ov.Presets[a].Bytes < ov.Presets[c].Bytes })
		ov.BudgetChart = tradeoffChart(pts, b.SizeBytes, b.MaxKL)
	}
	return ov
}

func uniqueRoles(rs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range rs {
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	sortRoles(out)
	return out
}

// File is the page's name in a report folder.
const File = "report.html"

// WriteFile renders a run report (RunJSON's bytes) into dir/report.html,
// replacing it whole or not at all, and returns the page's path.
func WriteFile(dir string, runJSON []byte) (string, error) {
	var page bytes.Buffer
	if err := HTML(&page, runJSON); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("cannot create the report folder: %w", err)
	}
	path := filepath.Join(dir, File)
	return path, atomicfile.WriteFile(path, page.Bytes(), 0o644, false)
}

// RunJSON is the JSON `qpipe run --json` prints for these job reports.
func RunJSON(reports []*pipeline.JobReport) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	err := enc.Encode(map[string]any{"jobs": reports})
	return b.Bytes(), err
}
