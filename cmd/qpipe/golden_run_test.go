package main

// Byte-identity of what `qpipe run` and `qpipe plan` write (issue 21): the
// sha256 of every output, lock file, plan and report of the example jobs
// and of the bundled models under the main presets, compared with
// testdata/golden_run.txt. Refactoring the runner must not change a byte.
//
// Masked, because they legitimately vary: the lock's `build` line (the
// sha256 of the test binary itself), the reports' "seconds" (wall times),
// and the stat caches (JOB.lock.stat: file times). The HTML report is
// rendered from the masked JSON.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/qpipe/qpipe/report"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/golden_run.txt from this run")

const goldenRunFile = "testdata/golden_run.txt"

// goldenPresets are the presets the bundled models are run with.
var goldenPresets = []string{"dynamic_int8", "dynamic_int4_block32", "weight_only_int8", "fp16"}

func TestGoldenRun(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs every example job and every bundled model")
	}
	if raceEnabled {
		t.Skip("the race detector makes this a minute; .ci/run runs it without")
	}
	t.Setenv("QPIPE_CACHE_DIR", "off")
	root := t.TempDir()
	copyTree(t, "../../examples", filepath.Join(root, "examples"))
	copyTree(t, e2eModels, filepath.Join(root, "testdata", "models"))
	models, _ := filepath.Glob(filepath.Join(root, "testdata", "models", "*.tflite"))
	jobs, _ := filepath.Glob(filepath.Join(root, "examples", "*.yaml"))
	if len(jobs) == 0 || len(models) == 0 {
		t.Fatal("no example jobs or models")
	}
	os.MkdirAll(filepath.Join(root, "models"), 0o755)
	for _, m := range models {
		for _, p := range goldenPresets {
			name := strings.TrimSuffix(filepath.Base(m), ".tflite")
			jobs = append(jobs, e2eWrite(t, filepath.Join(root, "models", name+"-"+p+".yaml"), fmt.Sprintf(
				"version: 1\nname: %s\nstages:\n  - load: {path: ../testdata/models/%s.tflite}\n  - quantize: {recipe: %s}\n  - verify: {}\n  - serialize: {path: \"../out/models/{name}_{suffix}.tflite\"}\n", name, name, p)))
		}
	}
	t.Chdir(root)
	var got []string
	add := func(key string, data []byte) {
		h := sha256.Sum256(data)
		got = append(got, key+" "+hex.EncodeToString(h[:]))
	}
	rel := func(p string) string { r, _ := filepath.Rel(root, p); return filepath.ToSlash(r) }
	// run: the first run writes, the second skips, --check compares,
	// --locked rebuilds and keeps, --force rewrites.
	steps := []struct {
		name string
		args []string
	}{{"run", nil}, {"rerun", nil}, {"check", []string{"--check"}}, {"locked", []string{"--locked"}}, {"force", []string{"--force"}}}
	for _, job := range jobs {
		j := rel(job)
		_, planOut, _ := e2eRun(t, "plan", "--json", j)
		add(j+" plan", []byte(planOut))
		for _, s := range steps {
			args := append([]string{"run", "--json", "--keep-going"}, s.args...)
			code, out, _ := e2eRun(t, append(args, j)...)
			masked := maskRunJSON(t, out)
			add(fmt.Sprintf("%s %s exit=%d report.json", j, s.name, code), masked)
			var page bytes.Buffer
			if dir := t.TempDir(); code == 0 || code == exitFailed {
				if p, err := report.WriteFile(dir, masked); err == nil {
					b, _ := os.ReadFile(p)
					page.Write(b)
				}
			}
			add(fmt.Sprintf("%s %s report.html", j, s.name), page.Bytes())
			lock := strings.TrimSuffix(job, ".yaml") + ".lock"
			if b, err := os.ReadFile(lock); err == nil {
				add(fmt.Sprintf("%s %s lock", j, s.name), maskLock(b))
			}
		}
	}
	outs, _ := filepath.Glob(filepath.Join(root, "out", "*.tflite"))
	more, _ := filepath.Glob(filepath.Join(root, "out", "models", "*.tflite"))
	for _, o := range append(outs, more...) {
		b, err := os.ReadFile(o)
		if err != nil {
			t.Fatal(err)
		}
		add(rel(o), b)
	}
	text := strings.Join(got, "\n") + "\n"
	if *updateGolden {
		if err := os.WriteFile(filepath.Join(testDir(t), goldenRunFile), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(filepath.Join(testDir(t), goldenRunFile))
	if err != nil {
		t.Fatalf("%v (go test -run TestGoldenRun -update-golden ./cmd/qpipe writes it)", err)
	}
	wl, gl := strings.Split(string(want), "\n"), strings.Split(text, "\n")
	for _, l := range gl {
		if !slices.Contains(wl, l) {
			t.Errorf("new or changed: %s", l)
		}
	}
	for _, l := range wl {
		if !slices.Contains(gl, l) {
			t.Errorf("missing or changed: %s", l)
		}
	}
}

var testWD, _ = os.Getwd()

// testDir is the package folder (the test changes the working directory).
func testDir(t *testing.T) string { return testWD }

// maskRunJSON zeroes every "seconds" of a run report.
func maskRunJSON(t *testing.T, s string) []byte {
	t.Helper()
	if s == "" {
		return nil
	}
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("run --json: %v\n%s", err, s)
	}
	var mask func(any)
	mask = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if k == "seconds" {
					v[k] = 0
				} else {
					mask(x)
				}
			}
		case []any:
			for _, x := range v {
				mask(x)
			}
		}
	}
	mask(v)
	var b bytes.Buffer
	if err := writeJSON(&b, v); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

var lockBuildLine = regexp.MustCompile(`(?m)^build .*$`)

// maskLock blanks the lock's build line (the test binary's own digest).
func maskLock(b []byte) []byte { return lockBuildLine.ReplaceAll(b, []byte("build -")) }

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		r, _ := filepath.Rel(from, p)
		if fi.IsDir() {
			return os.MkdirAll(filepath.Join(to, r), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, r), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}
