package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qpipe/qpipe/pipeline"
	"github.com/qpipe/qpipe/report"
)

// TestRunReport: run --report writes the page of exactly the JSON that
// run --json prints; qpipe report of that JSON writes the same bytes; the
// page carries every number of it.
func TestRunReport(t *testing.T) {
	dir := t.TempDir()
	e2eCopy(t, dir, "tiny_decoder.tflite")
	job := e2eWrite(t, filepath.Join(dir, "job.yaml"), `version: 1
name: tiny
stages:
  - load: {path: tiny_decoder.tflite}
  - quantize: {recipes: [dynamic_int8, dynamic_int4_block128]}
  - serialize: {path: "out/{name}_{suffix}.tflite"}
`)
	code, stdout, stderr := e2eRun(t, "run", "--json", "--report", filepath.Join(dir, "rep"), job)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	page, err := os.ReadFile(filepath.Join(dir, "rep", "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	missing, err := report.Missing([]byte(stdout), page)
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 {
		t.Errorf("the page misses %d value(s) of run --json, e.g. %s", len(missing), missing[0])
	}

	// What the page is drawn from: roles, blocks and sizes by role.
	var run struct{ Jobs []pipeline.JobReport }
	if err := json.Unmarshal([]byte(stdout), &run); err != nil {
		t.Fatal(err)
	}
	j := run.Jobs[0]
	if fi, err := os.Stat(filepath.Join(dir, "tiny_decoder.tflite")); err != nil || j.InputBytes != fi.Size() {
		t.Errorf("input_bytes = %d, want the input's size", j.InputBytes)
	}
	for _, o := range j.Outputs {
		var weights int64
		for _, s := range o.Sizes {
			weights += s.BytesOut
		}
		if len(o.Sizes) == 0 || weights <= 0 || weights >= o.Bytes {
			t.Errorf("%s: sizes %+v do not fit in the %d-byte file", o.Recipe, o.Sizes, o.Bytes)
		}
		layered := 0
		for _, tm := range o.Tensors {
			if tm.Role == "" {
				t.Errorf("%s: tensor %s has no role", o.Recipe, tm.Tensor)
			}
			if tm.Layer != nil {
				layered++
			}
		}
		if layered == 0 {
			t.Errorf("%s: no tensor has a transformer block", o.Recipe)
		}
	}

	runJSON := e2eWrite(t, filepath.Join(dir, "run.json"), stdout)
	for i := 0; i < 2; i++ {
		code, _, stderr = e2eRun(t, "report", runJSON, "-o", filepath.Join(dir, "again"))
		if code != 0 {
			t.Fatalf("report: exit %d: %s", code, stderr)
		}
		again, err := os.ReadFile(filepath.Join(dir, "again", "report.html"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, page) {
			t.Fatal("qpipe report of the run's JSON differs from run --report")
		}
	}
	// Without -o the page goes next to the JSON.
	if code, _, stderr = e2eRun(t, "report", runJSON); code != 0 {
		t.Fatalf("report: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "report.html")); err != nil {
		t.Error(err)
	}
}

func TestReportErrors(t *testing.T) {
	dir := t.TempDir()
	bad := e2eWrite(t, filepath.Join(dir, "bad.json"), "{\"jobs\": [\n  {\"seconds\": \"soon\"}]}\n")
	plan := e2eWrite(t, filepath.Join(dir, "plan.json"), `{"job": "x", "plans": []}`)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"report"}, exitUsage, "want one RUN.json"},
		{[]string{"report", "a.json", "b.json"}, exitUsage, "want one RUN.json"},
		{[]string{"report", "--nope", bad}, exitUsage, "flag provided but not defined"},
		{[]string{"report", filepath.Join(dir, "none.json")}, exitFailed, "none.json"},
		{[]string{"report", bad, "-o", filepath.Join(dir, "out")}, exitFailed, "bad.json: line 2, column 20"},
		{[]string{"report", plan, "-o", filepath.Join(dir, "out")}, exitFailed, `no "jobs"`},
	} {
		code, _, stderr := e2eRun(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, %q; want exit %d and %q", tc.args, code, stderr, tc.code, tc.want)
		}
	}
	if files := e2eFiles(t, dir); len(files) != 2 {
		t.Errorf("a failed report left files behind: %v", files)
	}
}
