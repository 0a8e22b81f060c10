package stages

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/tflite/fb"
	"github.com/qpipe/qpipe/pipeline"
)

// TestBudgetScaleOptions: a scheme offered with two scale methods is two
// options, whose schemes carry their method explicitly; a candidate that
// sets none takes the job's (quantize.scales, --scales); the same option
// listed twice is one.
func TestBudgetScaleOptions(t *testing.T) {
	m := openModel(t, filepath.Join(models, "tiny_decoder.tflite"))
	ms := &modelState{m: m, section: -1}
	if err := (&Annotate{}).Run(context.Background(), &pipeline.State{Model: ms}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		scales string   // the job's
		cands  []string // YAML
		labels string   // each unit's options
		want   string   // their Scales
	}{
		{"", []string{"dynamic_int4_block32", "{scheme: dynamic_int4_block32, scales: search}", "{scheme: dynamic_int4_block32, scales: calibrated}"},
			"dynamic_int4_block32,dynamic_int4_block32+search,dynamic_int4_block32+calibrated", "minmax,search,calibrated"},
		{"search", []string{"dynamic_int4_block32", "{scheme: dynamic_int4_block32, scales: minmax}", "fp16"},
			"dynamic_int4_block32+search,dynamic_int4_block32,fp16", "search,minmax,"},
		{"search", []string{"dynamic_int4_block64", "{scheme: dynamic_int4_block64, scales: search}"},
			"dynamic_int4_block64+search", "search"},
		{"", []string{"{scheme: dynamic_int4_block64, scales: minmax}", "dynamic_int4_block64", "dynamic_int8"},
			"dynamic_int4_block64,dynamic_int8", "minmax,"},
	} {
		cfg := &config.Budget{Size: 1, Candidates: map[config.Role][]*config.Scheme{}}
		for _, c := range tc.cands {
			s, err := config.ParseScheme(c)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Candidates[config.RoleDefault] = append(cfg.Candidates[config.RoleDefault], s)
		}
		units, err := budgetUnits(m, ms.uses, cfg, tc.scales)
		if err != nil {
			t.Fatal(err)
		}
		if len(units) != 15 {
			t.Fatalf("%d units, want 15", len(units))
		}
		for _, u := range units {
			var labels, scales []string
			for _, s := range u.schemes {
				labels = append(labels, optionLabel(s))
				scales = append(scales, s.Scales)
			}
			if got := strings.Join(labels, ","); got != tc.labels {
				t.Errorf("scales %q, %v: %s offers %s, want %s", tc.scales, tc.cands, u.label, got, tc.labels)
			}
			if got := strings.Join(scales, ","); got != tc.want {
				t.Errorf("scales %q, %v: %s: scale methods %s, want %s", tc.scales, tc.cands, u.label, got, tc.want)
			}
		}
	}
}

// int4Tensors is, per int4 blockwise tensor of the output at path, its
// stored values and its stored scales.
func int4Tensors(t *testing.T, path string) map[string][2][]byte {
	t.Helper()
	m := openModel(t, path)
	out := map[string][2][]byte{}
	for _, tt := range m.Meta.Subgraphs[0].Tensors {
		if tt.Quantization == nil || tt.Quantization.Details == nil {
			continue
		}
		bw, ok := tt.Quantization.Details.Value.(*fb.BlockwiseQuantizationT)
		if !ok {
			continue
		}
		out[tt.Name] = [2][]byte{bufferBytes(t, m, tt.Buffer), bufferBytes(t, m, m.Meta.Subgraphs[0].Tensors[bw.Scales].Buffer)}
	}
	return out
}

// TestBudgetScales: a budget whose candidates are one int4 scheme with
// each scale method writes every weight with the scales of the option it
// chose — the same bytes, values and scales, as that scheme with those
// scales outside a budget (calibrated under the job's calibration
// settings) —, names the method in the plan, the report and the options,
// measures each option under its own key, and writes the same bytes again
// from its cache.
func TestBudgetScales(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the sensitivity pass twice")
	}
	if raceEnabled {
		t.Skip("runs the interpreter many times: .ci/run runs it without the race detector")
	}
	t.Setenv("QPIPE_CACHE_DIR", t.TempDir()) // calibration statistics
	in := absModel(t, "tiny_decoder.tflite")
	const calibration = "{samples: 4, seq: 16}"
	methods := []string{config.ScalesMinMax, config.ScalesSearch, config.ScalesCalibrated}
	var recipes []string
	for _, m := range methods {
		recipes = append(recipes, fmt.Sprintf("{name: %s, suffix: %s, scales: %s, default: dynamic_int4_block32}", m, m, m))
	}
	uniform := map[string]map[string][2][]byte{}
	var size int64
	for _, b := range runBudgetJob(t, t.TempDir(), scalesJob(in, fmt.Sprintf("{calibration: %s, recipes: [%s]}", calibration, strings.Join(recipes, ", "))), "") {
		uniform[b.Output.Recipe] = int4Tensors(t, b.Output.Path)
		size = b.Output.Bytes
	}
	if len(uniform) != 3 || len(uniform[methods[0]]) != 16 {
		t.Fatalf("uniform outputs: %d, %d int4 tensors", len(uniform), len(uniform[methods[0]]))
	}
	job := scalesJob(in, fmt.Sprintf(`{calibration: %s, budget: {size: %d, samples: 2, candidates: {default: [dynamic_int4_block32, {scheme: dynamic_int4_block32, scales: search}, {scheme: dynamic_int4_block32, scales: calibrated}]}}}`, calibration, size))
	cache := t.TempDir()
	var first []byte
	for run := 0; run < 2; run++ {
		b := runBudgetJob(t, t.TempDir(), job, cache)[0]
		data, err := os.ReadFile(b.Output.Path)
		if err != nil {
			t.Fatal(err)
		}
		r := b.Output.Budget
		if run == 1 {
			if !bytes.Equal(data, first) {
				t.Fatal("the second run wrote other bytes")
			}
			if r.Cached != 45 {
				t.Errorf("second run: %d sensitivities from the cache, want 45 (15 weights × 3 options)", r.Cached)
			}
			continue
		}
		first = data
		if r.Cached != 0 {
			t.Errorf("first run: %d sensitivities from the cache, want 0 (each option has its own key)", r.Cached)
		}
		// What the pass measured is what it wrote (each probe quantized
		// with its option's scales, calibrated ones under the job's
		// calibration).
		if kl := evalKLSamples(t, in, b.Output.Path, r.Seed, 2); kl != r.MeasuredKL {
			t.Errorf("the budget measured KL %g, qpipe eval of the output on the same samples %g", r.MeasuredKL, kl)
		}
		got := int4Tensors(t, b.Output.Path)
		chosen := map[string]int{}
		for _, w := range b.Plan.Weights {
			if w.Budget == nil || len(w.Budget.Options) != 3 {
				t.Fatalf("%s: budget options %+v, want 3", w.Name, w.Budget)
			}
			method := config.ScalesMinMax
			if w.Scales != "" {
				method = w.Scales
			}
			byScales := map[string]pipeline.BudgetOption{}
			for _, o := range w.Budget.Options {
				if o.Chosen && (o.Scheme != *w.Scheme || o.Scales != w.Scales) {
					t.Errorf("%s: chose %s+%s, planned %s+%s", w.Name, o.Scheme, o.Scales, *w.Scheme, w.Scales)
				}
				byScales[o.Scales] = o
			}
			// Each option was quantized with its own scales: search has
			// the lower weight error, and no two options measured alike.
			mm, se, ca := byScales[""], byScales[config.ScalesSearch], byScales[config.ScalesCalibrated]
			if !(se.RelL2 < mm.RelL2) || ca.RelL2 == mm.RelL2 || mm.KL == se.KL || mm.KL == ca.KL || se.KL == ca.KL {
				t.Errorf("%s: options min-max %+v, search %+v, calibrated %+v: not measured with their own scales", w.Name, mm, se, ca)
			}
			if mm.Bytes != se.Bytes || mm.Bytes != ca.Bytes {
				t.Errorf("%s: options of %d, %d and %d bytes, want one size", w.Name, mm.Bytes, se.Bytes, ca.Bytes)
			}
			if !strings.HasPrefix(w.Budget.Why, optionLabel(&config.Scheme{Name: *w.Scheme, Scales: method})+" (") {
				t.Errorf("%s: why %q does not start with its option", w.Name, w.Budget.Why)
			}
			chosen[method]++
			g, ok := got[w.Name]
			if !ok {
				t.Fatalf("%s is not int4 in the output", w.Name)
			}
			want := uniform[method][w.Name]
			if !bytes.Equal(g[0], want[0]) || !bytes.Equal(g[1], want[1]) {
				t.Errorf("%s, chosen with %s scales: values equal %v, scales equal %v to dynamic_int4_block32 with scales: %s outside a budget",
					w.Name, method, bytes.Equal(g[0], want[0]), bytes.Equal(g[1], want[1]), method)
			}
		}
		for _, tm := range b.Output.Tensors {
			if tm.Scales == config.ScalesMinMax {
				t.Errorf("%s: the report names min-max scales", tm.Tensor)
			}
			if tm.Scales != "" && tm.SQNRMinMax == nil {
				t.Errorf("%s: %s scales without the min-max SQNR", tm.Tensor, tm.Scales)
			}
		}
		t.Logf("chosen scales per weight: %v; %s, %d bytes, KL %.5f; %d probes in %.1fs", chosen, r.Method, r.PredictedBytes, r.MeasuredKL, r.Probes, r.Seconds)
		if chosen[config.ScalesSearch]+chosen[config.ScalesCalibrated] == 0 {
			t.Error("no weight chose searched or calibrated scales: the test tests nothing")
		}
	}
}

// TestBudgetNeighbours: around measures, next to an option, the nearest
// smaller and larger ones — of two of one size (one scheme, two scale
// methods), the one of lower KL — and, with twins, the options of its own
// size; without twins it keeps within the bound it had before scale
// options.
func TestBudgetNeighbours(t *testing.T) {
	// fp16, int4 b32 min-max, b32 search, b128 min-max, b128 search.
	tab := &sensitivityTable{
		bytes: [][]int64{{400, 100, 100, 80, 80}},
		kl:    [][]float64{{0.01, 0.2, 0.1, 0.5, 0.6}},
	}
	for _, tc := range []struct {
		at    int
		twins bool
		want  string
	}{
		{1, true, "[3 0 2]"},
		{1, false, "[3 0]"},
		{2, true, "[3 0 1]"},
		{0, true, "[2]"},
		{4, true, "[2 3]"},
		{4, false, "[2]"},
	} {
		if got := fmt.Sprint(aroundOptions(tab, 0, tc.at, tc.twins)); got != tc.want {
			t.Errorf("around option %d (twins %v): %s, want %s", tc.at, tc.twins, got, tc.want)
		}
	}
	if n := aroundProbes([]*budgetUnit{{}}, tab, []int{1}, true); n != 3 {
		t.Errorf("aroundProbes = %d, want 3", n)
	}
}

// TestBudgetJobScales: the quantize stage's scales apply to the candidates
// that set none, in the measurement as in the output: every int4 weight
// is written with searched scales and the KL the budget reports is the
// written file's.
func TestBudgetJobScales(t *testing.T) {
	if raceEnabled {
		t.Skip("runs the interpreter many times: .ci/run runs it without the race detector")
	}
	in := absModel(t, "tiny_decoder.tflite")
	b := runBudgetJob(t, t.TempDir(), scalesJob(in, `{scales: search, budget: {size: 900kB, samples: 2, candidates: {default: [dynamic_int8, dynamic_int4_block32, dynamic_int4_block128]}}}`), "")[0]
	if kl := evalKLSamples(t, in, b.Output.Path, b.Output.Budget.Seed, 2); kl != b.Output.Budget.MeasuredKL {
		t.Errorf("the budget measured KL %g, qpipe eval of the output on the same samples %g", b.Output.Budget.MeasuredKL, kl)
	}
	int4 := 0
	for _, tm := range b.Output.Tensors {
		if strings.HasPrefix(tm.Scheme, "dynamic_int4") {
			int4++
			if tm.Scales != config.ScalesSearch {
				t.Errorf("%s: %s with scales %q, want search (the job's)", tm.Tensor, tm.Scheme, tm.Scales)
			}
		}
	}
	for _, w := range b.Plan.Weights {
		for _, o := range w.Budget.Options {
			if strings.HasPrefix(o.Scheme, "dynamic_int4") && o.Scales != config.ScalesSearch {
				t.Errorf("%s: option %s+%s, want +search", w.Name, o.Scheme, o.Scales)
			}
		}
	}
	if int4 == 0 {
		t.Fatal("no int4 weight: the test tests nothing")
	}
}
