package tflite

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/inspect")

// TestInspectGolden compares the Summary JSON of three models (plain float,
// per-channel int8 with DEQUANTIZE, blockwise int4) with golden files.
// Refresh them with: go test ./internal/tflite -run TestInspectGolden -update
func TestInspectGolden(t *testing.T) {
	for _, name := range []string{"aeq_single_fc", "aeq_mnist_quantized", "litert_qwen_fc_blockwise_quantized", "litert_simple_group_norm_op_bufoffset"} {
		t.Run(name, func(t *testing.T) {
			m, err := Open(filepath.Join(modelsDir, name+".tflite"))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			got, err := json.MarshalIndent(Inspect(m), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := filepath.Join("testdata", "inspect", name+".json")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Summary differs from %s (run with -update after checking the change):\n%s", golden, firstDiff(string(want), string(got)))
			}
		})
	}
}

// TestInspectEveryModel checks invariants of the summary on every model:
// the JSON marshals, totals add up, counts match the tables.
func TestInspectEveryModel(t *testing.T) {
	for _, path := range testModels(t) {
		t.Run(modelName(path), func(t *testing.T) {
			m, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			s := Inspect(m)
			if _, err := json.Marshal(s); err != nil {
				t.Fatal(err)
			}
			fi, _ := os.Stat(path)
			if s.FileBytes != fi.Size() || s.Schema != SummarySchema || s.Layout != m.Layout.String() {
				t.Errorf("header: %d bytes, schema %d, layout %s", s.FileBytes, s.Schema, s.Layout)
			}
			var sum int64
			for _, tb := range s.WeightsByType {
				sum += tb.Bytes
			}
			if sum != s.WeightBytes || s.WeightBytes > s.DataBytes {
				t.Errorf("weight bytes %d, by type %d, data %d", s.WeightBytes, sum, s.DataBytes)
			}
			ops := 0
			for _, o := range s.Operators {
				ops += o.Count
			}
			want := 0
			for i, sg := range m.Meta.Subgraphs {
				want += len(sg.Operators)
				if s.Subgraphs[i].NumTensors != len(sg.Tensors) || len(s.Subgraphs[i].Tensors) != len(sg.Tensors) {
					t.Errorf("subgraph %d: tensor counts", i)
				}
			}
			if ops != want {
				t.Errorf("operator counts sum to %d, model has %d operators", ops, want)
			}
		})
	}
}
