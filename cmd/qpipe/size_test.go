package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/pipeline"
)

// Sizes have one grammar (config.ParseSize, units case-insensitive) for
// every flag and job key: --memory 8gib used to fail while --budget-size
// 8gib and a job's `size: 8 GiB` worked (issue 21).
func TestSizeFlagsOneGrammar(t *testing.T) {
	want, err := config.ParseSize("8 GiB")
	if err != nil || want != 8<<30 {
		t.Fatalf("config.ParseSize(8 GiB) = %d, %v", want, err)
	}
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	for _, s := range []string{"8GiB", "8gib", "8 GiB", "8GIB"} {
		code, _, stderr := e2eRun(t, "run", "--jobs", "2", "--memory", s, missing)
		if strings.Contains(stderr, "--memory") || code != exitFailed {
			t.Errorf("run --memory %q: exit %d\n%s", s, code, stderr)
		}
		if n, err := config.ParseSize(s); err != nil || n != want {
			t.Errorf("config.ParseSize(%q) = %d, %v; want %d", s, n, err, want)
		}
	}
	for _, s := range []string{"8gb", "8 GB"} {
		if n, err := config.ParseSize(s); err != nil || n != 8e9 {
			t.Errorf("config.ParseSize(%q) = %d, %v", s, n, err)
		}
	}
	code, _, stderr := e2eRun(t, "run", "--jobs", "2", "--memory", "8 parsecs", missing)
	if code != exitUsage || !strings.Contains(stderr, "--memory 8 parsecs") {
		t.Errorf("run --memory '8 parsecs': exit %d\n%s", code, stderr)
	}
}

// Bytes are formatted one way (internal/bytesize): the run summary printed
// 916256 bytes as "894.8 KiB" where the HTML report said "895 KiB".
func TestSummaryBytesAsReport(t *testing.T) {
	var b strings.Builder
	printSummary(&b, []*pipeline.JobReport{{Name: "j", Status: pipeline.StatusOK, Outputs: []*pipeline.OutputReport{{Recipe: "r", Path: "o.tflite", Bytes: 916256}}}})
	if !strings.Contains(b.String(), "o.tflite  895 KiB") {
		t.Errorf("summary:\n%s", b.String())
	}
}
