package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qpipe/qpipe/internal/tflite"
)

func runQpipe(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = runMain(args, &o, &e)
	return code, o.String(), e.String()
}

// qpipe gen with the tiny preset writes the committed test model.
func TestGenTinyIsTheCommittedModel(t *testing.T) {
	out := filepath.Join(t.TempDir(), "tiny.tflite")
	code, stdout, stderr := runQpipe("gen", out)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "1574144 parameters") || !strings.Contains(stdout, "inline layout") {
		t.Errorf("summary %q", stdout)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("../../testdata/models/tiny_decoder.tflite")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("qpipe gen --preset tiny differs from testdata/models/tiny_decoder.tflite")
	}
}

// Flags override the preset, may follow the output name, and --layout
// picks the layout.
func TestGenFlags(t *testing.T) {
	out := filepath.Join(t.TempDir(), "m.tflite")
	code, stdout, stderr := runQpipe("gen", "--preset", "tiny", out, "--layers", "1", "--vocab", "300", "--seq", "4",
		"--act", "gelu", "--not-divisible", "--seed", "9", "--layout", "offset")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"vocab 300", "layers 1", "ffn 480", "seq 4", "act gelu", "seed 9", "offset layout"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("summary %q lacks %q", stdout, want)
		}
	}
	m, err := tflite.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Layout != tflite.LayoutOffset {
		t.Errorf("layout %v", m.Layout)
	}
	sg := m.Meta.Subgraphs[0]
	if got := sg.Tensors[sg.Outputs[0]].Shape; len(got) != 2 || got[0] != 4 || got[1] != 300 {
		t.Errorf("logits shape %v", got)
	}
}

func TestGenUsageErrors(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "x.tflite")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"gen"}, "want one output file"},
		{[]string{"gen", out, "other.tflite"}, "want one output file"},
		{[]string{"gen", "--preset", "huge", out}, `unknown preset "huge"`},
		{[]string{"gen", "--act", "relu", out}, `activation "relu"`},
		{[]string{"gen", "--heads", "3", out}, "not divisible by heads 3"},
		{[]string{"gen", "--layout", "sideways", out}, `--layout "sideways"`},
		{[]string{"gen", "--dim", "x", out}, "invalid value"},
		{[]string{"gen", "--bogus", out}, "flag provided but not defined"},
	} {
		code, _, stderr := runQpipe(tc.args...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 mentioning %q", tc.args, code, stderr, tc.want)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a usage error left %s behind", out)
	}
}

func TestGenUnwritableOutput(t *testing.T) {
	out := filepath.Join(t.TempDir(), "no", "such", "dir", "m.tflite")
	code, _, stderr := runQpipe("gen", out)
	if code != exitFailed || !strings.Contains(stderr, "m.tflite") {
		t.Errorf("exit %d, stderr %q; want exit 1 naming the file", code, stderr)
	}
}

func TestGenHelp(t *testing.T) {
	code, stdout, _ := runQpipe("gen", "-h")
	if code != exitOK || !strings.Contains(stdout, "--not-divisible") && !strings.Contains(stdout, "-not-divisible") {
		t.Errorf("exit %d, help %q", code, stdout)
	}
}

// An interrupted gen exits 130 and leaves nothing in the output folder.
func TestGenInterrupted(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := genMain(ctx, []string{filepath.Join(dir, "m.tflite")}, io.Discard)
	var ee exitError
	if !errors.As(err, &ee) || ee.code != exitInterrupted {
		t.Fatalf("error %v, want exit code %d", err, exitInterrupted)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}
