package litert

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkStart measures starting a runner: Node.js plus loading the
// LiteRT.js wasm runtime.
func BenchmarkStart(b *testing.B) {
	Require(b)
	for b.Loop() {
		r, err := Start(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		r.Close()
	}
}

// BenchmarkRun measures one Run call per model (load + compile + run +
// outputs back, the runtime already started) on seeded inputs, for every
// test model the runtime runs. b.SetBytes is the model file size; the
// runner's own timing of loading+compiling and of the invocation alone are
// reported as load-ms/op and invoke-ms/op.
func BenchmarkRun(b *testing.B) {
	r := Require(b)
	paths, err := filepath.Glob(filepath.Join(models, "*.tflite"))
	if err != nil {
		b.Fatal(err)
	}
	for _, path := range paths {
		info, err := r.Info(path)
		if err != nil {
			continue // the runtime refuses it (see roundtrip_test.go)
		}
		st, err := os.Stat(path)
		if err != nil {
			b.Fatal(err)
		}
		inputs := RandomInputs(info, 1, 0)
		b.Run(strings.TrimSuffix(filepath.Base(path), ".tflite"), func(b *testing.B) {
			b.SetBytes(st.Size())
			var load, invoke float64
			for b.Loop() {
				if _, err := r.Run(path, inputs); err != nil {
					b.Fatal(err)
				}
				r.mu.Lock()
				load, invoke = load+r.last.LoadMs, invoke+r.last.RunMs
				r.mu.Unlock()
			}
			b.ReportMetric(load/float64(b.N), "load-ms/op")
			b.ReportMetric(invoke/float64(b.N), "invoke-ms/op")
		})
	}
}
