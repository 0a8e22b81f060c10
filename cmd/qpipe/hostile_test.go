//go:build linux

package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// hostileSeeds is where internal/tflite keeps its hostile variants of the
// small test models (one per class of corruption, see TestHostileModels
// there), as fuzzing seeds.
const hostileSeeds = "../../internal/tflite/testdata/fuzz/FuzzRead"

// Limits each qpipe process runs under in TestHostileModelsE2E: the
// address-space cap, and a bound after which a run counts as hung.
const (
	hostileMemKiB = 4 << 20 // 4 GiB
	hostileHang   = 20 * time.Second
)

// hostileModels returns name → bytes of every hostile model: the seeds of
// internal/tflite, and variants of the larger quantized models (per-channel
// int8, blockwise int4 written by qpipe itself) built here.
func hostileModels(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	seeds, err := filepath.Glob(filepath.Join(hostileSeeds, "hostile-*"))
	if err != nil || len(seeds) < 30 {
		t.Fatalf("hostile seeds in %s: %d (%v)", hostileSeeds, len(seeds), err)
	}
	for _, p := range seeds {
		text, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		lit, ok := strings.CutPrefix(strings.TrimSpace(string(text)), "go test fuzz v1\n[]byte(")
		if !ok || !strings.HasSuffix(lit, ")") {
			t.Fatalf("%s: not a []byte corpus entry", p)
		}
		b, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out[filepath.Base(p)] = []byte(b)
	}

	edit := func(name, in string, f func(m *tflite.Model)) {
		m, err := tflite.Open(in)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		f(m)
		p := filepath.Join(dir, name+".tflite")
		if err := tflite.WriteFile(context.Background(), p, m, tflite.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = b
	}
	mnist := filepath.Join(e2eModels, "aeq_mnist_quantized.tflite") // tensor 1: INT8 [10 32], 10 scales
	q := func(m *tflite.Model) *fb.QuantizationParametersT { return m.Meta.Subgraphs[0].Tensors[1].Quantization }
	edit("int8-scale-count", mnist, func(m *tflite.Model) { q(m).Scale, q(m).ZeroPoint = q(m).Scale[:3], q(m).ZeroPoint[:3] })
	edit("int8-zero-point-count", mnist, func(m *tflite.Model) { q(m).ZeroPoint = q(m).ZeroPoint[:9] })
	edit("int8-no-zero-point", mnist, func(m *tflite.Model) { q(m).ZeroPoint = nil })
	edit("int8-dimension-past-rank", mnist, func(m *tflite.Model) { q(m).QuantizedDimension = 5 })
	edit("int8-dimension-negative", mnist, func(m *tflite.Model) { q(m).QuantizedDimension = -2 })

	// A blockwise int4 model as qpipe writes it, then broken.
	block := filepath.Join(dir, "decoder_q4.tflite")
	if code, _, stderr := e2eRun(t, "quantize", "--recipe", "dynamic_int4_block32", filepath.Join(e2eModels, "tiny_decoder.tflite"), block); code != 0 {
		t.Fatalf("quantize: %s", stderr)
	}
	blockwise := func(m *tflite.Model) (*fb.TensorT, *fb.BlockwiseQuantizationT) {
		for _, tt := range m.Meta.Subgraphs[0].Tensors {
			if q := tt.Quantization; q != nil && q.Details != nil {
				if bq, ok := q.Details.Value.(*fb.BlockwiseQuantizationT); ok {
					return tt, bq
				}
			}
		}
		t.Fatal("no blockwise tensor")
		return nil, nil
	}
	edit("int4-scales-missing", block, func(m *tflite.Model) { _, bq := blockwise(m); bq.Scales = 1 << 20 })
	edit("int4-scales-wrong-shape", block, func(m *tflite.Model) {
		_, bq := blockwise(m)
		s := m.Meta.Subgraphs[0].Tensors[bq.Scales]
		s.Shape = []int32{s.Shape[0], s.Shape[1] / 2}
	})
	edit("int4-block-size", block, func(m *tflite.Model) { _, bq := blockwise(m); bq.BlockSize = 48 })
	edit("int4-scales-self", block, func(m *tflite.Model) {
		tt, bq := blockwise(m)
		bq.Scales = int32(slices.Index(m.Meta.Subgraphs[0].Tensors, tt))
	})
	return out
}

// TestHostileModelsE2E: every hostile model is refused by `qpipe inspect`
// and `qpipe quantize`, each run as its own process under a 4 GiB
// address-space limit: exit 1 with a tflite error naming the file, no
// crash, no hang, no output file, the input unchanged.
func TestHostileModelsE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("builds qpipe")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "qpipe")
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		if goBin, err = exec.LookPath("go"); err != nil {
			t.Skip("no go command to build qpipe with")
		}
	}
	build := exec.Command(goBin, "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	models := hostileModels(t, dir)
	inDir, outDir := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	for _, d := range []string{inDir, outDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) (int, string) {
		ctx, cancel := context.WithTimeout(context.Background(), hostileHang)
		defer cancel()
		script := `ulimit -v ` + strconv.Itoa(hostileMemKiB) + ` && exec "$0" "$@"`
		cmd := exec.CommandContext(ctx, "sh", append([]string{"-c", script, bin}, args...)...)
		out, err := cmd.CombinedOutput()
		if ctx.Err() != nil {
			t.Errorf("qpipe %v: still running after %v", args, hostileHang)
		}
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("qpipe %v: %v", args, err)
		}
		return cmd.ProcessState.ExitCode(), string(out)
	}
	names := make([]string, 0, len(models))
	for name := range models {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			in := filepath.Join(inDir, name+".tflite")
			if err := os.WriteFile(in, models[name], 0o644); err != nil {
				t.Fatal(err)
			}
			sha := e2eSHA(t, in)
			caseOut := filepath.Join(outDir, name)
			if err := os.Mkdir(caseOut, 0o755); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(caseOut, "out.tflite")
			for _, args := range [][]string{{"inspect", in}, {"quantize", "--recipe", "dynamic_int8", in, out}} {
				code, text := run(args...)
				if code != exitFailed || !strings.Contains(text, "tflite: "+in+": ") ||
					strings.Contains(text, "panic") || strings.Contains(text, "goroutine ") {
					t.Errorf("qpipe %s: exit %d, want %d with a tflite error naming the file:\n%s", args[0], code, exitFailed, text)
				}
			}
			if files := e2eFiles(t, caseOut); len(files) != 0 {
				t.Errorf("files written: %v", files)
			}
			if e2eSHA(t, in) != sha {
				t.Error("the input changed")
			}
		})
	}
}
