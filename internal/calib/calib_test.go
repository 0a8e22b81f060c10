package calib

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/evaluate"
	"github.com/qpipe/qpipe/internal/interp"
	"github.com/qpipe/qpipe/internal/modelinput"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
	"github.com/qpipe/qpipe/internal/tokenizer"
)

const models = "../../testdata/models"

func absModel(t testing.TB, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(models, name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func openModel(t testing.TB, path string) *tflite.Model {
	t.Helper()
	m, err := tflite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func fileSum(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:]), nil
}

// calibrationStats is stages' entry: the key from the files, then Get.
func calibrationStats(ctx context.Context, m *tflite.Model, path string, cal *config.Calibration, log zerolog.Logger) (Stats, error) {
	sum, err := fileSum(path)
	if err != nil {
		return nil, err
	}
	in := ""
	if cal.Inputs != "" {
		if in, err = fileSum(cal.Inputs); err != nil {
			return nil, err
		}
	}
	return Get(ctx, m, CacheKey(sum, cal, in), cal, log)
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
	clear := forget
	clear()
	first, err := calibrationStats(context.Background(), m, path, cal, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 2 {
		t.Fatalf("statistics for %d weights, want the 2 FULLY_CONNECTED weights", len(first))
	}
	for k, s := range first {
		w := m.Meta.Subgraphs[k.Subgraph].Tensors[k.Tensor]
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
	run := func(cal *config.Calibration) (Stats, error) {
		forget()
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
	st := Stats{{0, 3}: {Mean: []float32{1, -2}, Var: []float32{0.5, 0}}}
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
	forget()
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

// TestPassStopsBeforeLogits: on a decoder the pass stops at its last
// FULLY_CONNECTED (the logits layer, whose input is all it needs), and
// the statistics are those of running every operator.
func TestPassStopsBeforeLogits(t *testing.T) {
	m := openModel(t, absModel(t, "tiny_decoder.tflite"))
	ops := m.Meta.Subgraphs[0].Operators
	stop := lastNeeded(m, 0, false)
	if stop < 0 || m.OpCode(ops[stop]) != fb.BuiltinOperatorFULLY_CONNECTED {
		t.Fatalf("stops at %d of %d operators", stop, len(ops))
	}
	cal := &config.Calibration{Samples: 3, Seq: 8}
	got, err := Run(context.Background(), m, cal, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	// The whole model, sample by sample, every FULLY_CONNECTED observed.
	sums := map[Key]*statSums{}
	in, err := interp.New(m, interp.Options{Observe: func(ev interp.OpEvent) { observeFC(m, ev, sums) }})
	if err != nil {
		t.Fatal(err)
	}
	sig := in.Signatures()[0]
	l, err := evaluate.PlanInputs(sig, modelinput.TokenInputs(m.Meta, sig.Subgraph), seqFor(sig, m, cal.Seq))
	if err != nil {
		t.Fatal(err)
	}
	for k := range cal.Samples {
		inputs, err := l.Generate(evaluate.CalibrationSeed, k)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := in.Run(context.Background(), sig.Key, inputs); err != nil {
			t.Fatal(err)
		}
	}
	want := Stats{}
	for k, s := range sums {
		want[k] = s.stats()
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatal("the batched, stopped pass gathers other statistics than whole runs sample by sample")
	}
}

// TestCalibrationText: calibration on a text (tokenized, cut into windows
// of the model's length) gathers the statistics of the same windows
// written as an inputs file; text without a tokenizer that fits is an
// error naming the job's place.
func TestCalibrationText(t *testing.T) {
	dir := t.TempDir()
	path := absModel(t, "tiny_decoder.tflite")
	m := openModel(t, path)
	text := filepath.Join("..", "..", "testdata", "tokenizers", "botchan.txt")
	tokFile := filepath.Join("..", "..", "testdata", "tokenizers", "hf_gpt2_1024.json")
	tok, err := tokenizer.Load(tokFile)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(text)
	ids := tok.Encode(string(b))
	var lines strings.Builder
	for w := 0; w < 3; w++ {
		js, _ := json.Marshal(map[string][]int{"tokens": ids[w*8 : (w+1)*8]})
		lines.Write(append(js, '\n'))
	}
	file := filepath.Join(dir, "in.jsonl")
	if err := os.WriteFile(file, []byte(lines.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	fromText, err := Run(context.Background(), m, &config.Calibration{Samples: 3, Text: text, Tokenizer: tokFile}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	fromFile, err := Run(context.Background(), m, &config.Calibration{Samples: 3, Inputs: file}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if len(fromText) != 15 || !reflect.DeepEqual(fromText, fromFile) {
		t.Fatalf("text and inputs file: %d weights, equal %v", len(fromText), reflect.DeepEqual(fromText, fromFile))
	}
	small := filepath.Join(dir, "small.txt")
	os.WriteFile(small, []byte("Hi"), 0o644)
	for _, tc := range []struct {
		cal  config.Calibration
		want string
	}{
		{config.Calibration{Text: small, Tokenizer: tokFile}, "fewer than one window of 8"},
		{config.Calibration{Text: text, Tokenizer: text}, "quantize.calibration.text: ../../testdata/tokenizers/botchan.txt: SentencePiece model"},
		{config.Calibration{Text: filepath.Join(dir, "nope.txt"), Tokenizer: tokFile}, "nope.txt"},
	} {
		tc.cal.P = config.Pos{File: "job.yaml", Line: 3, Col: 5}
		if _, err := Run(context.Background(), m, &tc.cal, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "job.yaml:3:5: ") {
			t.Errorf("%+v: %v, want %q", tc.cal, err, tc.want)
		}
	}
}
