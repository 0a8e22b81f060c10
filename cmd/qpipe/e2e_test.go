package main

// End-to-end tests of qpipe run / quantize / plan, run in-process through
// runMain: broken job files and broken models must exit non-zero with a
// message that names the problem and its place, and leave no file behind.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

const e2eModels = "../../testdata/models"

// e2eRun runs qpipe in-process.
func e2eRun(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = runMain(args, &o, &e)
	return code, o.String(), e.String()
}

// e2eCopy copies a test model into dir and returns its path.
func e2eCopy(t *testing.T, dir, model string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e2eModels, model))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, model)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func e2eWrite(t *testing.T, path, text string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// e2eFiles lists every file under dir (relative paths), temporary files
// included.
func e2eFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func e2eSHA(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// nanModel writes a copy of in whose weight tensor `name` holds NaNs (the
// first element and every 7th) and returns its path.
func nanModel(t *testing.T, in, out, name string) {
	t.Helper()
	m, err := tflite.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var found bool
	for _, sg := range m.Meta.Subgraphs {
		for _, tt := range sg.Tensors {
			if tt.Name != name {
				continue
			}
			n := m.Buffers[tt.Buffer].Data.Len()
			data, err := tflite.ReadAll(m.Buffers[tt.Buffer].Data)
			if err != nil {
				t.Fatal(err)
			}
			b := append([]byte(nil), data...)
			nan := math.Float32bits(float32(math.NaN()))
			for i := int64(0); i < n; i += 4 * 7 {
				b[i], b[i+1], b[i+2], b[i+3] = byte(nan), byte(nan>>8), byte(nan>>16), byte(nan>>24)
			}
			m.Buffers[tt.Buffer].Data = tflite.Bytes(b)
			found = true
		}
	}
	if !found {
		t.Fatalf("%s has no tensor %q", in, name)
	}
	if err := tflite.WriteFile(context.Background(), out, m, tflite.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
}

// notDivisible returns the names of the FULLY_CONNECTED weights of a model
// whose input dimension block does not divide.
func notDivisible(t *testing.T, path string, block int32) []string {
	t.Helper()
	m, err := tflite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var names []string
	for _, sg := range m.Meta.Subgraphs {
		for _, op := range sg.Operators {
			if m.OpCode(op) != fb.BuiltinOperatorFULLY_CONNECTED {
				continue
			}
			w := sg.Tensors[op.Inputs[1]]
			if w.Shape[1]%block != 0 {
				names = append(names, w.Name)
			}
		}
	}
	return names
}

// TestBrokenJobs: each broken job file or model fails with exit code 1,
// a message naming the problem and where it is, and no file written
// (neither the output nor a temporary file).
func TestBrokenJobs(t *testing.T) {
	nodivNames := notDivisible(t, filepath.Join(e2eModels, "tiny_decoder_nodiv.tflite"), 256)
	if len(nodivNames) == 0 {
		t.Fatal("tiny_decoder_nodiv has no weight that block 256 does not divide")
	}
	nodivWant := []string{"480", "256"}
	for _, n := range nodivNames {
		nodivWant = append(nodivWant, `"`+n+`"`)
	}
	const nanTensor = "arith.constant14" // block 0's feed-forward w1
	cases := []struct {
		name  string
		setup func(t *testing.T, dir string) // extra files
		job   string
		want  []string // substrings of stderr
	}{
		{
			name: "unknown key",
			job: `version: 1
stages:
  - load: {path: tiny_decoder.tflite}
  - quantize: {recipe: dynamic_int8, colour: red}
  - serialize: {path: "out/{name}_{suffix}.tflite"}
`,
			want: []string{"job.yaml:4:", `unknown key "colour"`},
		},
		{
			name: "bad recipe name",
			job: `version: 1
stages:
  - load: {path: tiny_decoder.tflite}
  - quantize: {recipe: dynamic_int9}
  - serialize: {path: "out/{name}_{suffix}.tflite"}
`,
			want: []string{"job.yaml:4:", `"dynamic_int9"`, "dynamic_int8"},
		},
		{
			name: "block size 48",
			job: `version: 1
stages:
  - load: {path: tiny_decoder.tflite}
  - quantize:
      recipe:
        default: {weight: int4, mode: dynamic_range, algorithm: min_max, granularity: blockwise, block_size: 48, symmetric: true}
  - serialize: {path: "out/{name}_{suffix}.tflite"}
`,
			want: []string{"job.yaml:6:", "block size 48", "multiple of 32"},
		},
		{
			name: "block size 16",
			job: `version: 1
stages:
  - load: {path: tiny_decoder.tflite}
  - quantize:
      recipe:
        attention: dynamic_int4_block16
  - serialize: {path: "out/{name}_{suffix}.tflite"}
`,
			want: []string{"job.yaml:6:", "block size 16", "multiple of 32"},
		},
		{
			name: "dimension not divisible by the block",
			job: `version: 1
stages:
  - load: {path: tiny_decoder_nodiv.tflite}
  - quantize: {recipe: dynamic_int4_block256}
  - verify: {}
  - serialize: {path: "out/{name}_{suffix}.tflite"}
`,
			want: nodivWant,
		},
		{
			// Checked for every recipe before the first output is written.
			name: "release job with a recipe that does not fit",
			job: `version: 1
stages:
  - load: {path: tiny_decoder_nodiv.tflite}
  - quantize: {recipes: [dynamic_int8, fp16, dynamic_int4_block256]}
  - verify: {}
  - serialize: {path: "out/{name}_{suffix}.tflite"}
`,
			want: append([]string{"dynamic_int4_block256"}, nodivWant...),
		},
		{
			name: "missing input model",
			job: `version: 1
stages:
  - load: {path: nothere.tflite}
  - quantize: {recipe: dynamic_int8}
  - serialize: {path: "out/{name}_{suffix}.tflite"}
`,
			want: []string{"job.yaml:3:", "nothere.tflite", "does not exist"},
		},
		{
			name: "output path equal to the input",
			job: `version: 1
stages:
  - load: {path: tiny_decoder.tflite}
  - quantize: {recipe: dynamic_int8}
  - serialize: {path: ./tiny_decoder.tflite}
`,
			want: []string{"job.yaml:5:", "input"},
		},
		{
			name: "output template expanding to the input",
			job: `version: 1
name: tiny_decoder
stages:
  - load: {path: tiny_decoder.tflite}
  - quantize: {recipe: dynamic_int8}
  - serialize: {path: "{name}.tflite"}
`,
			want: []string{"job.yaml:6:", "is the input"},
		},
		{
			name: "output path a symlink to the input",
			setup: func(t *testing.T, dir string) {
				if err := os.Symlink("tiny_decoder.tflite", filepath.Join(dir, "link.tflite")); err != nil {
					t.Skip(err)
				}
			},
			job: `version: 1
stages:
  - load: {path: tiny_decoder.tflite}
  - quantize: {recipe: dynamic_int8}
  - serialize: {path: link.tflite}
`,
			want: []string{"link.tflite", "input"},
		},
		{
			name: "YAML syntax error",
			job: `version: 1
stages:
  - load: {path: tiny_decoder.tflite
  - quantize: {recipe: dynamic_int8}
  - serialize: {path: "out/{name}_{suffix}.tflite"}
`,
			want: []string{"job.yaml:3", "syntax"},
		},
		{
			name: "corrupt model (truncated)",
			setup: func(t *testing.T, dir string) {
				b, err := os.ReadFile(filepath.Join(dir, "tiny_decoder.tflite"))
				if err != nil {
					t.Fatal(err)
				}
				e2eWrite(t, filepath.Join(dir, "cut.tflite"), string(b[:len(b)/3]))
			},
			job: `version: 1
stages:
  - load: {path: cut.tflite}
  - quantize: {recipe: dynamic_int8}
  - serialize: {path: "out/{name}_{suffix}.tflite"}
`,
			want: []string{"cut.tflite", "truncated"},
		},
		{
			name: "NaN weights",
			setup: func(t *testing.T, dir string) {
				nanModel(t, filepath.Join(dir, "tiny_decoder.tflite"), filepath.Join(dir, "nan.tflite"), nanTensor)
			},
			job: `version: 1
stages:
  - load: {path: nan.tflite}
  - quantize: {recipe: dynamic_int8}
  - serialize: {path: "out/{name}_{suffix}.tflite"}
`,
			want: []string{`"` + nanTensor + `"`, "NaN"},
		},
		{
			name: "NaN weights, fp16",
			setup: func(t *testing.T, dir string) {
				nanModel(t, filepath.Join(dir, "tiny_decoder.tflite"), filepath.Join(dir, "nan.tflite"), nanTensor)
			},
			job: `version: 1
stages:
  - load: {path: nan.tflite}
  - quantize: {recipe: fp16}
  - serialize: {path: "out/{name}_{suffix}.tflite"}
`,
			want: []string{`"` + nanTensor + `"`, "NaN"},
		},
		{
			name: "NaN weights, int4",
			setup: func(t *testing.T, dir string) {
				nanModel(t, filepath.Join(dir, "tiny_decoder.tflite"), filepath.Join(dir, "nan.tflite"), nanTensor)
			},
			job: `version: 1
stages:
  - load: {path: nan.tflite}
  - quantize: {recipe: dynamic_int4_block32}
  - serialize: {path: "out/{name}_{suffix}.tflite"}
`,
			want: []string{`"` + nanTensor + `"`, "NaN"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			in := e2eCopy(t, dir, "tiny_decoder.tflite")
			e2eCopy(t, dir, "tiny_decoder_nodiv.tflite")
			if c.setup != nil {
				c.setup(t, dir)
			}
			job := e2eWrite(t, filepath.Join(dir, "job.yaml"), c.job)
			inSHA := e2eSHA(t, in)
			before := e2eFiles(t, dir)

			code, _, stderr := e2eRun(t, "run", job)
			if code != exitFailed {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitFailed, stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if after := e2eFiles(t, dir); !slices.Equal(before, after) {
				t.Errorf("files changed: before %v, after %v", before, after)
			}
			if got := e2eSHA(t, in); got != inSHA {
				t.Errorf("the input model changed")
			}
		})
	}
}

// TestQuantizeCommandErrors: the one-shot command exits 2 on a bad command
// line and 1 on a job failure, naming the problem, and writes nothing.
func TestQuantizeCommandErrors(t *testing.T) {
	dir := t.TempDir()
	in := e2eCopy(t, dir, "tiny_decoder.tflite")
	nodiv := e2eCopy(t, dir, "tiny_decoder_nodiv.tflite")
	out := filepath.Join(dir, "out", "q.tflite")
	inSHA := e2eSHA(t, in)
	cases := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"no recipe", []string{"quantize", in, out}, exitUsage, []string{"--recipe"}},
		{"unknown recipe", []string{"quantize", "--recipe", "dynamic_int9", in, out}, exitUsage, []string{`"dynamic_int9"`}},
		{"block size 16", []string{"quantize", "--recipe", "dynamic_int4_block16", in, out}, exitUsage, []string{"block size 16"}},
		{"block size 48", []string{"quantize", "--recipe", "dynamic_int4_block48", in, out}, exitUsage, []string{"block size 48"}},
		{"one argument", []string{"quantize", "--recipe", "dynamic_int8", in}, exitUsage, []string{"OUT.tflite"}},
		{"unknown flag", []string{"quantize", "--recipe", "dynamic_int8", "--colour", in, out}, exitUsage, []string{"colour"}},
		{"run without jobs", []string{"run"}, exitUsage, []string{"no job file"}},
		{"unknown command", []string{"quantise"}, exitUsage, []string{`"quantise"`}},
		{"missing input", []string{"quantize", "--recipe", "dynamic_int8", filepath.Join(dir, "nothere.tflite"), out}, exitFailed, []string{"nothere.tflite", "does not exist"}},
		{"output is the input", []string{"quantize", "--recipe", "dynamic_int8", in, in}, exitFailed, []string{"input"}},
		{"not divisible", []string{"quantize", "--recipe", "dynamic_int4_block256", nodiv, out}, exitFailed, []string{"480", "block size 256"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e2eFiles(t, dir)
			code, _, stderr := e2eRun(t, c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, c.code, stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if after := e2eFiles(t, dir); !slices.Equal(before, after) {
				t.Errorf("files changed: before %v, after %v", before, after)
			}
			if e2eSHA(t, in) != inSHA {
				t.Error("the input model changed")
			}
		})
	}
}

// jsonReport mirrors what `qpipe run --json` promises, decoded loosely so
// that a missing or renamed key shows up.
type jsonReport struct {
	Jobs []map[string]json.RawMessage `json:"jobs"`
}

func field[T any](t *testing.T, obj map[string]json.RawMessage, key string) T {
	t.Helper()
	var v T
	raw, ok := obj[key]
	if !ok {
		t.Fatalf("key %q missing in %v", key, keys(obj))
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("key %q: %v", key, err)
	}
	return v
}

func keys(obj map[string]json.RawMessage) []string {
	var ks []string
	for k := range obj {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// writeKeepGoingJobs writes a good and a bad job into dir.
func writeKeepGoingJobs(t *testing.T, dir string) (good, bad, goodOut string) {
	e2eCopy(t, dir, "tiny_decoder.tflite")
	e2eCopy(t, dir, "tiny_decoder_nodiv.tflite")
	good = e2eWrite(t, filepath.Join(dir, "good.yaml"), `version: 1
name: good
stages:
  - load: {path: tiny_decoder.tflite}
  - quantize: {recipe: dynamic_int8}
  - verify: {}
  - serialize: {path: "out/{name}_{suffix}.tflite"}
`)
	bad = e2eWrite(t, filepath.Join(dir, "bad.yaml"), `version: 1
name: bad
stages:
  - load: {path: tiny_decoder_nodiv.tflite}
  - quantize: {recipe: dynamic_int4_block256}
  - verify: {}
  - serialize: {path: "out/{name}_{suffix}.tflite"}
`)
	return good, bad, filepath.Join(dir, "out", "good_q8.tflite")
}

// TestRunKeepGoing: with --keep-going a failed job does not stop the
// batch: the exit code is 1, the good job's output is written, and the
// summary lists both. Without it, the jobs after the failure are skipped.
func TestRunKeepGoing(t *testing.T) {
	t.Run("keep going", func(t *testing.T) {
		dir := t.TempDir()
		good, bad, goodOut := writeKeepGoingJobs(t, dir)
		code, _, stderr := e2eRun(t, "run", "--keep-going", bad, good)
		if code != exitFailed {
			t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr)
		}
		if _, err := os.Stat(goodOut); err != nil {
			t.Fatalf("good job's output: %v", err)
		}
		if files := e2eFiles(t, filepath.Join(dir, "out")); !slices.Equal(files, []string{"good_q8.tflite"}) {
			t.Errorf("out/ holds %v, want only good_q8.tflite", files)
		}
		summary := stderr[strings.LastIndex(stderr, "summary:"):]
		for _, re := range []string{`failed\s+bad\b`, `ok\s+good\b`, `good_q8\.tflite`, `block size 256`} {
			if !regexp.MustCompile(re).MatchString(summary) {
				t.Errorf("summary lacks %s:\n%s", re, summary)
			}
		}
	})
	t.Run("stop at the first failure", func(t *testing.T) {
		dir := t.TempDir()
		good, bad, _ := writeKeepGoingJobs(t, dir)
		code, stdout, stderr := e2eRun(t, "run", "--json", bad, good)
		if code != exitFailed {
			t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr)
		}
		if files := e2eFiles(t, dir); slices.ContainsFunc(files, func(f string) bool { return strings.HasPrefix(f, "out") }) {
			t.Errorf("output written after a failed job without --keep-going: %v", files)
		}
		var r jsonReport
		if err := json.Unmarshal([]byte(stdout), &r); err != nil {
			t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
		}
		if len(r.Jobs) != 2 {
			t.Fatalf("%d jobs in the report, want 2", len(r.Jobs))
		}
		if s := field[string](t, r.Jobs[0], "status"); s != "failed" {
			t.Errorf("job 0 status %q", s)
		}
		if s := field[string](t, r.Jobs[1], "status"); s != "skipped" {
			t.Errorf("job 1 status %q, want skipped", s)
		}
	})
}

// TestRunJSON: the --json report carries, per job, name, status, error,
// the input's sha256, and per output its path, sha256, size and per-tensor
// SQNR; the values are the real ones.
func TestRunJSON(t *testing.T) {
	dir := t.TempDir()
	good, bad, goodOut := writeKeepGoingJobs(t, dir)
	code, stdout, stderr := e2eRun(t, "run", "--keep-going", "--json", good, bad)
	if code != exitFailed {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr)
	}
	var r jsonReport
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
	}
	if len(r.Jobs) != 2 {
		t.Fatalf("%d jobs in the report, want 2", len(r.Jobs))
	}

	g, b := r.Jobs[0], r.Jobs[1]
	if n := field[string](t, g, "name"); n != "good" {
		t.Errorf("job 0 name %q", n)
	}
	if s := field[string](t, g, "status"); s != "ok" {
		t.Errorf("job 0 status %q", s)
	}
	if e, ok := g["error"]; ok && string(e) != `""` {
		t.Errorf("good job has error %s", e)
	}
	if sha := field[string](t, g, "input_sha256"); sha != e2eSHA(t, filepath.Join(dir, "tiny_decoder.tflite")) {
		t.Errorf("input_sha256 %q is not the input's", sha)
	}
	outs := field[[]map[string]json.RawMessage](t, g, "outputs")
	if len(outs) != 1 {
		t.Fatalf("%d outputs, want 1", len(outs))
	}
	o := outs[0]
	path := field[string](t, o, "path")
	if fi1, err1 := os.Stat(path); err1 != nil {
		t.Fatalf("output path %q: %v", path, err1)
	} else if fi2, err2 := os.Stat(goodOut); err2 != nil || !os.SameFile(fi1, fi2) {
		t.Errorf("output path %q is not %s", path, goodOut)
	}
	if sha := field[string](t, o, "sha256"); sha != e2eSHA(t, goodOut) {
		t.Errorf("output sha256 %q is not the file's", sha)
	}
	fi, _ := os.Stat(goodOut)
	if n := field[int64](t, o, "bytes"); n != fi.Size() {
		t.Errorf("output bytes %d, file has %d", n, fi.Size())
	}
	type metric struct {
		Tensor string   `json:"tensor"`
		Scheme string   `json:"scheme"`
		SQNR   *float64 `json:"sqnr_db"`
	}
	metrics := field[[]metric](t, o, "tensors")
	// Every int8 weight of the output has its SQNR, once.
	m, err := tflite.Open(goodOut)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var int8s []string
	for _, tt := range m.Meta.Subgraphs[0].Tensors {
		if tt.Type == fb.TensorTypeINT8 {
			int8s = append(int8s, tt.Name)
		}
	}
	var got []string
	for _, x := range metrics {
		got = append(got, x.Tensor)
		if x.SQNR == nil || math.IsNaN(*x.SQNR) || *x.SQNR < 30 || *x.SQNR > 80 {
			t.Errorf("tensor %q: sqnr_db %v outside the plausible int8 range 30..80 dB", x.Tensor, x.SQNR)
		}
		if x.Scheme != "dynamic_int8" {
			t.Errorf("tensor %q: scheme %q", x.Tensor, x.Scheme)
		}
	}
	slices.Sort(int8s)
	slices.Sort(got)
	// The tied lm_head shares the embedding's buffer: it may be listed
	// under its own name too, but every int8 tensor must be there.
	for _, n := range int8s {
		if _, ok := slices.BinarySearch(got, n); !ok {
			t.Errorf("int8 tensor %q has no sqnr_db", n)
		}
	}
	if len(int8s) != 16 {
		t.Errorf("%d int8 tensors in the output, want 16 (every weight of the tiny decoder)", len(int8s))
	}

	if n := field[string](t, b, "name"); n != "bad" {
		t.Errorf("job 1 name %q", n)
	}
	if s := field[string](t, b, "status"); s != "failed" {
		t.Errorf("job 1 status %q", s)
	}
	if e := field[string](t, b, "error"); !strings.Contains(e, "block size 256") || !strings.Contains(e, "480") {
		t.Errorf("job 1 error %q does not name the constraint", e)
	}
	if sha := field[string](t, b, "input_sha256"); sha != e2eSHA(t, filepath.Join(dir, "tiny_decoder_nodiv.tflite")) {
		t.Errorf("failed job's input_sha256 %q is not its input's", sha)
	}
	if outs := field[[]json.RawMessage](t, b, "outputs"); len(outs) != 0 {
		t.Errorf("failed job lists outputs %s", outs)
	}
}
