package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qpipe/qpipe/internal/tflite"
)

func inspectRun(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = runMain(append([]string{"inspect"}, args...), &o, &e)
	return code, o.String(), e.String()
}

const inspectModels = "../../testdata/models"

func TestInspectText(t *testing.T) {
	code, out, errOut := inspectRun(filepath.Join(inspectModels, "aeq_single_fc.tflite"))
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := `model     ../../testdata/models/aeq_single_fc.tflite
file      1.6 KiB, inline layout, schema version 3, "MLIR Converted."
buffers   7, 676 B of data
weights   576 B

Weights by type
  TYPE     TENSORS  BUFFERS  BYTES
  FLOAT32  2        2        576 (576 B)

Operators
  OP               VERSION  COUNT
  FULLY_CONNECTED  1        1

Signatures
  serving_default (subgraph 0)
    in   input_1  tensor 0  FLOAT32  [-1,8]
    out  dense    tensor 3  FLOAT32  [-1,16]

Subgraph 0 "main": 4 tensors, 1 operators, inputs [0], outputs [3]
  #  NAME                                     TYPE     SHAPE    QUANTIZATION  BYTES  CONST  BUFFER
  0  serving_default_input_1:0                FLOAT32  [-1,8]   -             32            1
  1  sequential/dense/BiasAdd/ReadVariableOp  FLOAT32  [16]     -             64     yes    2
  2  sequential/dense/MatMul                  FLOAT32  [16,8]   -             512    yes    3
  3  StatefulPartitionedCall:0                FLOAT32  [-1,16]  -             64            4

Metadata
  min_runtime_version  buffer 5  16 bytes
  CONVERSION_METADATA  buffer 6  84 bytes
`
	if out != want {
		t.Errorf("got:\n%s\nwant:\n%s", out, want)
	}
}

func TestInspectQuantizationText(t *testing.T) {
	for model, want := range map[string]string{
		"litert_qwen_fc_blockwise_quantized": "blockwise block 32 scales t3",
		"aeq_mnist_quantized":                "per-channel axis 0 ×32",
		"tflm_person_detect":                 "per-tensor scale 0.0235294 zp -128",
	} {
		code, out, errOut := inspectRun(filepath.Join(inspectModels, model+".tflite"))
		if code != exitOK || !strings.Contains(out, want) {
			t.Errorf("%s: exit %d, output lacks %q\n%s", model, code, want, errOut)
		}
	}
}

// Every model inspects in both forms; the JSON form is tflite.Inspect's
// Summary, flags may come before or after the model.
func TestInspectEveryModel(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(inspectModels, "*.tflite"))
	if len(files) == 0 {
		t.Fatal("no models")
	}
	for _, f := range files {
		if code, _, errOut := inspectRun(f); code != exitOK {
			t.Errorf("%s: exit %d: %s", f, code, errOut)
		}
		for _, args := range [][]string{{"--json", f}, {f, "--json"}} {
			code, out, errOut := inspectRun(args...)
			if code != exitOK {
				t.Fatalf("%v: exit %d: %s", args, code, errOut)
			}
			var got tflite.Summary
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("%v: %v", args, err)
			}
			m, err := tflite.Open(f)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := json.Marshal(tflite.Inspect(m))
			m.Close()
			again, _ := json.Marshal(&got)
			if !bytes.Equal(again, want) {
				t.Errorf("%v: JSON output is not tflite.Inspect's summary", args)
			}
		}
	}
}

func TestInspectFailures(t *testing.T) {
	dir := t.TempDir()
	orig, err := os.ReadFile(filepath.Join(inspectModels, "aeq_single_fc.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.tflite")
	os.WriteFile(truncated, orig[:1000], 0o644)
	wrongID := filepath.Join(dir, "wrong.tflite")
	bad := append([]byte(nil), orig...)
	copy(bad[4:], "ABCD")
	os.WriteFile(wrongID, bad, 0o644)
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{truncated}, exitFailed, "qpipe inspect: tflite: " + truncated + ": buffer 0: table at byte 0x410 lies outside the flatbuffer (1000 bytes)"},
		{[]string{wrongID, "--json"}, exitFailed, `file identifier is "ABCD", want "TFL3"`},
		{[]string{filepath.Join(dir, "missing.tflite")}, exitFailed, "no such file"},
		{nil, exitUsage, "want one model file"},
		{[]string{"a.tflite", "b.tflite"}, exitUsage, "want one model file"},
		{[]string{"--yaml", truncated}, exitUsage, "flag provided but not defined"},
	}
	for _, c := range cases {
		code, out, errOut := inspectRun(c.args...)
		if code != c.code || !strings.Contains(errOut, c.want) || out != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit %d and %q", c.args, code, out, errOut, c.code, c.want)
		}
	}
}
