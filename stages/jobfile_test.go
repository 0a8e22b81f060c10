package stages

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
	"github.com/qpipe/qpipe/pipeline"
)

// runJobFile writes a job file into a temporary folder, parses it as qpipe
// run would, and runs it. It returns the folder and the branch states.
func runJobFile(t testing.TB, text string) (dir string, branches []*pipeline.State, err error) {
	t.Helper()
	return runJobFileWith(t, text, true)
}

// runJobFileWith is runJobFile with per-tensor error measurement on or off.
func runJobFileWith(t testing.TB, text string, metrics bool) (dir string, branches []*pipeline.State, err error) {
	t.Helper()
	dir = t.TempDir()
	path := filepath.Join(dir, "job.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	job, err := config.LoadJob(path)
	if err != nil {
		t.Fatalf("job file: %v", err)
	}
	pj, err := Build(job, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := &pipeline.State{Log: zerolog.Nop(), Metrics: metrics}
	branches, err = pipeline.Run(context.Background(), pj, s)
	t.Cleanup(func() { Close(s) })
	return dir, branches, err
}

func absModel(t testing.TB, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(models, name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// tensorIndex returns the index of the tensor named name in subgraph sg.
func tensorIndex(t testing.TB, m *tflite.Model, sg int, name string) int {
	t.Helper()
	for i, tt := range m.Meta.Subgraphs[sg].Tensors {
		if tt.Name == name {
			return i
		}
	}
	t.Fatalf("subgraph %d has no tensor %q", sg, name)
	return -1
}

// weightOf returns the tensor op reads at input i, looking through a
// DEQUANTIZE: the stored weight, and whether a DEQUANTIZE was in between.
func weightOf(m *tflite.Model, sg int, op *fb.OperatorT, i int) (int, bool) {
	s := m.Meta.Subgraphs[sg]
	ti := op.Inputs[i]
	for _, p := range s.Operators {
		if len(p.Outputs) == 1 && p.Outputs[0] == ti && m.OpCode(p) == fb.BuiltinOperatorDEQUANTIZE {
			return int(p.Inputs[0]), true
		}
	}
	return int(ti), false
}

// opsOf lists the ops of subgraph sg with the given code.
func opsOf(m *tflite.Model, sg int, code fb.BuiltinOperator) []*fb.OperatorT {
	var out []*fb.OperatorT
	for _, op := range m.Meta.Subgraphs[sg].Operators {
		if m.OpCode(op) == code {
			out = append(out, op)
		}
	}
	return out
}

// opVersion is the OperatorCode version of op.
func opVersion(m *tflite.Model, op *fb.OperatorT) int32 {
	return m.Meta.OperatorCodes[op.OpcodeIndex].Version
}
