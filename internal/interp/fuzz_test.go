package interp

import (
	"bytes"
	"os"
	"testing"

	"github.com/qpipe/qpipe/internal/tflite"
)

// FuzzRun reads arbitrary bytes as a model and runs every signature on zero
// inputs: whatever the file says, the interpreter returns outputs or an
// error, never panics. The seeds are small real models.
func FuzzRun(f *testing.F) {
	for _, name := range []string{"aeq_single_fc_bias.tflite", "aeq_bmm.tflite", "aeq_single_gather.tflite",
		"tflm_hello_world_float.tflite", "litert_simple_group_norm_op_bufoffset.tflite", "aeq_two_signatures.tflite", "tflm_person_detect.tflite"} {
		b, err := os.ReadFile("../../testdata/models/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	defer func(l int) { elementLimit = l }(elementLimit)
	elementLimit = 1 << 20 // keep each run small
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := tflite.Read(bytes.NewReader(data), int64(len(data)), "fuzz.tflite")
		if err != nil {
			return
		}
		defer m.Close()
		in, err := New(m, Options{Threads: 2})
		if err != nil {
			return
		}
		for _, s := range in.Signatures() {
			for _, io := range s.Inputs {
				if numElements(io.Shape) > elementLimit {
					return // the inputs alone would be too large
				}
			}
		}
		_ = runAll(m)
	})
}
