package stages

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/quant"
	"github.com/qpipe/qpipe/internal/tflite/fb"
	"github.com/qpipe/qpipe/pipeline"
)

func scalesJob(in, quantize string) string {
	return fmt.Sprintf(`version: 1
name: sc
stages:
  - load: {path: %q}
  - quantize: %s
  - serialize: {path: "out/{name}_{suffix}.tflite"}
`, in, quantize)
}

// TestSearchScalesDeterministic: searched scales write the same bytes for
// any GOMAXPROCS and kernel worker count, different bytes from min-max, and
// a run reports both SQNRs with the search's above min-max's.
func TestSearchScalesDeterministic(t *testing.T) {
	in := absModel(t, "tiny_decoder.tflite")
	var runs [][]byte
	for _, procs := range []int{1, 2, 3} {
		prev := runtime.GOMAXPROCS(procs)
		_, branches, err := runJobFileWith(t, scalesJob(in, `{recipe: dynamic_int4_block32, scales: search}`), procs == 2)
		runtime.GOMAXPROCS(prev)
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(branches[0].Output.Path)
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, data)
		if procs != 2 {
			continue
		}
		ts := branches[0].Output.Tensors
		if len(ts) != 16 {
			t.Fatalf("%d tensor metrics, want 16", len(ts))
		}
		for _, m := range ts {
			if m.Scales != "search" || m.SQNRMinMax == nil || m.SQNR < *m.SQNRMinMax+0.3 {
				t.Errorf("%s: scales %q, SQNR %.2f dB, min-max %v", m.Tensor, m.Scales, m.SQNR, m.SQNRMinMax)
			}
		}
	}
	for i := 1; i < len(runs); i++ {
		if !bytes.Equal(runs[0], runs[i]) {
			t.Fatalf("run %d differs from run 0 at byte %d", i, firstDiff(runs[0], runs[i]))
		}
	}
	_, branches, err := runJobFileWith(t, scalesJob(in, `{recipe: dynamic_int4_block32}`), false)
	if err != nil {
		t.Fatal(err)
	}
	mm, err := os.ReadFile(branches[0].Output.Path)
	if err != nil {
		t.Fatal(err)
	}
	if len(mm) != len(runs[0]) || bytes.Equal(mm, runs[0]) {
		t.Fatalf("min-max and search outputs: %d and %d bytes, equal %v", len(mm), len(runs[0]), bytes.Equal(mm, runs[0]))
	}
}

// TestScalesPrecedence: a scheme's own scales beat its recipe's, which beat
// the quantize stage's (or --scales); int8 schemes keep min-max.
func TestScalesPrecedence(t *testing.T) {
	in := absModel(t, "tiny_decoder.tflite")
	for _, c := range []struct {
		quantize string
		opt      string
		want     map[string]string // role/layer -> scales ("" = not searched)
	}{
		{`{recipe: dynamic_int4_block64, scales: search}`, "", map[string]string{"embedding": "search", "attention/0": "search", "feedforward/1": "search"}},
		{`{recipe: dynamic_int4_block64}`, "search", map[string]string{"embedding": "search", "attention/0": "search"}},
		{`{recipe: dynamic_int4_block64, scales: search}`, "minmax", map[string]string{"embedding": "", "attention/0": ""}},
		{`{recipe: {scales: search, default: dynamic_int4_block32, attention: {scheme: dynamic_int4_block32, scales: minmax}}, scales: minmax}`, "",
			map[string]string{"embedding": "search", "attention/0": "", "feedforward/0": "search"}},
		{`{recipe: {default: dynamic_int8, feedforward: {all: dynamic_int4_block32, layers: {"1": {scheme: dynamic_int4_block32, scales: search}}}}, scales: minmax}`, "",
			map[string]string{"embedding": "", "attention/0": "", "feedforward/0": "", "feedforward/1": "search"}},
		{`{recipe: dynamic_int8, scales: search}`, "", map[string]string{"embedding": "", "attention/0": ""}},
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, "job.yaml")
		if err := os.WriteFile(path, []byte(scalesJob(in, c.quantize)), 0o644); err != nil {
			t.Fatal(err)
		}
		job, err := config.LoadJob(path)
		if err != nil {
			t.Fatalf("%s: %v", c.quantize, err)
		}
		pj, err := Build(job, Options{Scales: c.opt})
		if err != nil {
			t.Fatal(err)
		}
		s := &pipeline.State{Log: zerolog.Nop(), DryRun: true}
		branches, err := pipeline.Run(context.Background(), pj, s)
		Close(s)
		if err != nil {
			t.Fatalf("%s: %v", c.quantize, err)
		}
		got := map[string]string{}
		for _, w := range branches[0].Plan.Weights {
			k := w.Role
			if w.Layer != nil {
				k = fmt.Sprintf("%s/%d", w.Role, *w.Layer)
			}
			got[k] = w.Scales
			if w.Scales != "" && (w.SQNR == nil || w.SQNRMinMax == nil || *w.SQNR <= *w.SQNRMinMax) {
				t.Errorf("%s: %s: plan SQNR %v, min-max %v", c.quantize, w.Name, w.SQNR, w.SQNRMinMax)
			}
		}
		for k, v := range c.want {
			if got[k] != v {
				t.Errorf("%s --scales %q: %s has scales %q, want %q", c.quantize, c.opt, k, got[k], v)
			}
		}
	}
}

// TestSearchScalesStoredExactly: every int4 weight written with searched
// scales holds exactly clip(rint(x/s)) for its stored scales s.
func TestSearchScalesStoredExactly(t *testing.T) {
	in := absModel(t, "tiny_decoder.tflite")
	_, branches, err := runJobFileWith(t, scalesJob(in, `{recipe: dynamic_int4_block128, scales: search}`), false)
	if err != nil {
		t.Fatal(err)
	}
	src := openModel(t, in)
	out := openModel(t, branches[0].Output.Path)
	n := 0
	for ti, tt := range out.Meta.Subgraphs[0].Tensors {
		if tt.Quantization == nil || tt.Quantization.Details == nil {
			continue
		}
		bw, ok := tt.Quantization.Details.Value.(*fb.BlockwiseQuantizationT)
		if !ok {
			continue
		}
		orig := src.Meta.Subgraphs[0].Tensors[ti]
		x := quant.Float32s(bufferBytes(t, src, orig.Buffer))
		scales := quant.Uint16View(bufferBytes(t, out, out.Meta.Subgraphs[0].Tensors[bw.Scales].Buffer))
		want := make([]byte, len(x)/2)
		quant.QuantizeInt4(want, x, int(tt.Shape[1]), int(bw.BlockSize), scales)
		if !bytes.Equal(want, bufferBytes(t, out, tt.Buffer)) {
			t.Errorf("%s: stored values are not QuantizeInt4 of the stored scales", tt.Name)
		}
		n++
	}
	if n != 16 {
		t.Fatalf("checked %d int4 weights, want 16", n)
	}
}

// TestCalibrationCache: the statistics are written to the cache folder,
// read back by a fresh process (here: the in-memory map cleared) equal, and
// a corrupt cache file is recomputed, not an error.
func TestCalibrationCache(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("QPIPE_CACHE_DIR", dir)
	path := absModel(t, "aeq_conv_fc_mnist.tflite")
	m := openModel(t, path)
	cal := &config.Calibration{Samples: 3, Seq: 8}
	clear := func() {
		statsMu.Lock()
		statsMem = map[string]*statsOnce{}
		statsMu.Unlock()
	}
	clear()
	first, err := calibrationStats(context.Background(), m, path, cal, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 2 {
		t.Fatalf("statistics for %d weights, want the 2 FULLY_CONNECTED weights", len(first))
	}
	for k, s := range first {
		w := m.Meta.Subgraphs[k.sg].Tensors[k.tensor]
		if len(s.Mean) != int(w.Shape[1]) {
			t.Fatalf("%s: %d columns, weight shape %v", w.Name, len(s.Mean), w.Shape)
		}
		for j := range s.Var {
			if !(s.Var[j] >= 0) || math.IsInf(float64(s.Mean[j]), 0) {
				t.Fatalf("%s column %d: mean %v variance %v", w.Name, j, s.Mean[j], s.Var[j])
			}
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "calibration-*.gob"))
	if len(files) != 1 {
		t.Fatalf("cache files: %v", files)
	}
	clear()
	again, err := calibrationStats(context.Background(), m, path, cal, zerolog.Nop())
	if err != nil || !reflect.DeepEqual(again, first) {
		t.Fatalf("from the cache: %v, equal %v", err, reflect.DeepEqual(again, first))
	}
	if err := os.WriteFile(files[0], []byte("not a gob"), 0o644); err != nil {
		t.Fatal(err)
	}
	clear()
	fresh, err := calibrationStats(context.Background(), m, path, cal, zerolog.Nop())
	if err != nil || !reflect.DeepEqual(fresh, first) {
		t.Fatalf("after corrupting the cache: %v, equal %v", err, reflect.DeepEqual(fresh, first))
	}
	// Other settings are another key.
	clear()
	if _, err := calibrationStats(context.Background(), m, path, &config.Calibration{Samples: 2, Seq: 8}, zerolog.Nop()); err != nil {
		t.Fatal(err)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "calibration-*.gob")); len(files) != 2 {
		t.Fatalf("cache files after a second setting: %v", files)
	}
}

// TestCalibrationInputsFile: calibration reads qpipe eval's inputs format
// (JSON lines), uses at most samples lines, and a bad line is an error
// naming file, line and column.
func TestCalibrationInputsFile(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("QPIPE_CACHE_DIR", dir)
	path := absModel(t, "tiny_decoder.tflite")
	m := openModel(t, path)
	file := filepath.Join(dir, "in.jsonl")
	lines := "{\"tokens\": [1, 2, 3, 4, 5, 6, 7, 8]}\n{\"tokens\": [9, 10, 11, 12, 13, 14, 15, 1023]}\n{\"tokens\": [5, 5, 5, 5, 5, 5, 5, 5]}\n"
	if err := os.WriteFile(file, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(cal *config.Calibration) (weightStats, error) {
		statsMu.Lock()
		statsMem = map[string]*statsOnce{}
		statsMu.Unlock()
		return calibrationStats(context.Background(), m, path, cal, zerolog.Nop())
	}
	fromFile, err := run(&config.Calibration{Samples: 2, Seq: 128, Inputs: file})
	if err != nil {
		t.Fatal(err)
	}
	random, err := run(&config.Calibration{Samples: 2, Seq: 128})
	if err != nil {
		t.Fatal(err)
	}
	if len(fromFile) != 15 || len(random) != 15 {
		t.Fatalf("statistics for %d and %d weights, want the 15 FULLY_CONNECTED weights", len(fromFile), len(random))
	}
	if reflect.DeepEqual(fromFile, random) {
		t.Fatal("statistics from the inputs file equal those of random inputs")
	}
	// Only the first two lines count: a third changes nothing.
	two, err := run(&config.Calibration{Samples: 2, Seq: 128, Inputs: file})
	if err != nil || !reflect.DeepEqual(two, fromFile) {
		t.Fatalf("rerun: %v", err)
	}
	bad := filepath.Join(dir, "bad.jsonl")
	if err := os.WriteFile(bad, []byte("{\"tokens\": [1, 2, 3, 4, 5, 6, 7, 8]}\n{\"tokens\": [1, 2, 3]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := run(&config.Calibration{Samples: 4, Seq: 128, Inputs: bad}); err == nil || !strings.Contains(err.Error(), "bad.jsonl:2:") {
		t.Fatalf("bad line: %v", err)
	}
	if _, err := run(&config.Calibration{Samples: 4, Seq: 128, Inputs: filepath.Join(dir, "nope.jsonl")}); err == nil || !strings.Contains(err.Error(), "nope.jsonl") {
		t.Fatalf("missing file: %v", err)
	}
}

// FuzzReadStats: any bytes in a cache file are either statistics that pass
// the checks the search relies on or an error (the pass then reruns),
// never a panic.
func FuzzReadStats(f *testing.F) {
	dir := f.TempDir()
	good := filepath.Join(dir, "good.gob")
	st := weightStats{{0, 3}: {Mean: []float32{1, -2}, Var: []float32{0.5, 0}}}
	if err := writeStats(good, "k", st); err != nil {
		f.Fatal(err)
	}
	data, err := os.ReadFile(good)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte("not a gob"))
	f.Add(data[:len(data)/2])
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(t.TempDir(), "c.gob")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := readStats(p, "k")
		if err != nil {
			return
		}
		for _, s := range got {
			if len(s.Mean) != len(s.Var) || !finiteStats(s.Mean, s.Var) {
				t.Fatalf("accepted statistics %+v", s)
			}
		}
	})
}

// TestCalibrationCacheOff: QPIPE_CACHE_DIR=off, as the README documents,
// turns the cache off: calibration writes no file anywhere (it used to
// write ./off/calibration-*.gob under the working directory).
func TestCalibrationCacheOff(t *testing.T) {
	path := absModel(t, "aeq_conv_fc_mnist.tflite")
	m := openModel(t, path)
	wd := t.TempDir()
	t.Chdir(wd)
	t.Setenv("QPIPE_CACHE_DIR", "off")
	t.Setenv("XDG_CACHE_HOME", filepath.Join(wd, "xdg"))
	statsMu.Lock()
	statsMem = map[string]*statsOnce{}
	statsMu.Unlock()
	if _, err := calibrationStats(context.Background(), m, path, &config.Calibration{Samples: 2, Seq: 8}, zerolog.Nop()); err != nil {
		t.Fatal(err)
	}
	var files []string
	filepath.WalkDir(wd, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if len(files) != 0 {
		t.Fatalf("QPIPE_CACHE_DIR=off left files: %v", files)
	}
}
