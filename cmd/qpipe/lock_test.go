package main

// End-to-end tests of lock files, --check, --locked, --force and the
// up-to-date skips, run in-process on real test models.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockProject lays out a job like a user's repository: jobs/JOB.yaml,
// models/MODEL, outputs under out/. It returns the job file's path.
func lockProject(t *testing.T, dir, name, model, recipes string) string {
	t.Helper()
	os.MkdirAll(filepath.Join(dir, "jobs"), 0o755)
	os.MkdirAll(filepath.Join(dir, "models"), 0o755)
	if _, err := os.Stat(filepath.Join(dir, "models", model)); err != nil {
		e2eCopy(t, filepath.Join(dir, "models"), model)
	}
	return e2eWrite(t, filepath.Join(dir, "jobs", name+".yaml"), `version: 1
name: `+name+`
stages:
  - load: {path: ../models/`+model+`}
  - quantize: {recipes: [`+recipes+`]}
  - verify: {on_mismatch: fallback}
  - serialize: {path: "../out/{name}_{suffix}.tflite"}
`)
}

type runReport struct {
	Jobs []struct {
		Name    string `json:"name"`
		Status  string `json:"status"`
		Reason  string `json:"reason"`
		Error   string `json:"error"`
		Lock    string `json:"lock_file"`
		Outputs []struct {
			Path   string `json:"path"`
			SHA256 string `json:"sha256"`
		} `json:"outputs"`
		Check []struct {
			What, Path, Detail string
			OK                 bool
		} `json:"check"`
	} `json:"jobs"`
}

// runJSON runs qpipe run --json ARGS and decodes the report.
func runJSON(t *testing.T, args ...string) (int, runReport, string) {
	t.Helper()
	code, stdout, stderr := e2eRun(t, append([]string{"run", "--json"}, args...)...)
	var r runReport
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("run %v: exit %d, stdout not JSON: %v\n%s\n%s", args, code, err, stdout, stderr)
	}
	return code, r, stderr
}

// snapshot records every file under dir with its bytes and mtime.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, rel := range e2eFiles(t, dir) {
		p := filepath.Join(dir, rel)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		out[rel] = e2eSHA(t, p) + " " + fi.ModTime().String()
	}
	return out
}

func sameSnapshot(t *testing.T, what string, a, b map[string]string) {
	t.Helper()
	for k, v := range a {
		if b[k] != v {
			t.Errorf("%s: %s changed (%q -> %q)", what, k, v, b[k])
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			t.Errorf("%s: new file %s", what, k)
		}
	}
}

func flipByte(t *testing.T, path string, at int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	f.ReadAt(b, at)
	b[0] ^= 0x01
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}

func TestLockReproducibleAndCheck(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	ja := lockProject(t, a, "tiny", "tiny_decoder.tflite", "dynamic_int8, dynamic_int4_block32")
	jb := lockProject(t, b, "tiny", "tiny_decoder.tflite", "dynamic_int8, dynamic_int4_block32")
	for _, j := range []string{ja, jb} {
		if code, r, stderr := runJSON(t, j); code != 0 || r.Jobs[0].Status != "ok" {
			t.Fatalf("run %s: exit %d %+v\n%s", j, code, r, stderr)
		}
	}
	la, _ := os.ReadFile(filepath.Join(a, "jobs", "tiny.lock"))
	lb, _ := os.ReadFile(filepath.Join(b, "jobs", "tiny.lock"))
	if string(la) != string(lb) || len(la) == 0 {
		t.Fatalf("two builds gave different locks:\n%s\n%s", la, lb)
	}
	for _, want := range []string{"\nqpipe dev\n", "\njob tiny.yaml sha256:", "\noutput ../out/tiny_q4_block32.tflite\n  recipe name=dynamic_int4_block32 suffix=q4_block32 default=dynamic_int4_block32\n  input ../models/tiny_decoder.tflite size=6321024 sha256:"} {
		if !strings.Contains(string(la), want) {
			t.Errorf("lock lacks %q:\n%s", want, la)
		}
	}

	// --check passes and touches nothing.
	before := snapshot(t, a)
	code, r, stderr := runJSON(t, "--check", ja)
	if code != 0 || r.Jobs[0].Status != "ok" {
		t.Fatalf("--check of a fresh build: exit %d\n%s", code, stderr)
	}
	kinds := map[string]int{}
	for _, c := range r.Jobs[0].Check {
		kinds[c.What]++
	}
	if kinds["job"] != 1 || kinds["input"] != 1 || kinds["output"] != 2 || kinds["rebuilt"] != 2 {
		t.Errorf("--check compared %v", kinds)
	}
	sameSnapshot(t, "--check", before, snapshot(t, a))

	// One byte of an output, then one byte of the input.
	out := filepath.Join(a, "out", "tiny_q8.tflite")
	flipByte(t, out, 5000)
	before = snapshot(t, a)
	code, stdout, stderr := e2eRun(t, "run", "--check", ja)
	if code != 1 || !strings.Contains(stderr, "DIFFERS output  ../out/tiny_q8.tflite") || strings.Contains(stderr, "DIFFERS rebuilt") || strings.Contains(stderr, "DIFFERS input") {
		t.Fatalf("--check with an edited output: exit %d\n%s%s", code, stdout, stderr)
	}
	sameSnapshot(t, "--check (failing)", before, snapshot(t, a))
	flipByte(t, out, 5000)

	in := filepath.Join(a, "models", "tiny_decoder.tflite")
	fi, _ := os.Stat(in)
	flipByte(t, in, fi.Size()/2)
	code, _, stderr = e2eRun(t, "run", "--check", ja)
	if code != 1 || !strings.Contains(stderr, "DIFFERS input   ../models/tiny_decoder.tflite") {
		t.Fatalf("--check with an edited input: exit %d\n%s", code, stderr)
	}
	flipByte(t, in, fi.Size()/2)
	if code, _, stderr := e2eRun(t, "run", "--check", ja); code != 0 {
		t.Fatalf("--check after undoing the edits: exit %d\n%s", code, stderr)
	}

	// No lock: --check fails and says how to make one.
	c := t.TempDir()
	jc := lockProject(t, c, "tiny", "tiny_decoder.tflite", "dynamic_int8")
	if code, _, stderr := e2eRun(t, "run", "--check", jc); code != 1 || !strings.Contains(stderr, "no lock file") {
		t.Fatalf("--check without a lock: exit %d\n%s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(c, "out")); err == nil {
		t.Fatal("--check without a lock wrote outputs")
	}
}

// settle makes the files of a run old enough for the stat cache to trust
// them (lockfile.Racy), by moving their times back instead of sleeping.
func settle(t *testing.T, dir string) {
	t.Helper()
	old := time.Now().Add(-time.Minute)
	for _, rel := range e2eFiles(t, dir) {
		if !strings.HasSuffix(rel, ".stat") {
			os.Chtimes(filepath.Join(dir, rel), old, old)
		}
	}
}

func TestUpToDateSkips(t *testing.T) {
	dir := t.TempDir()
	job := lockProject(t, dir, "tiny", "tiny_decoder.tflite", "dynamic_int8, fp16")
	lock := filepath.Join(dir, "jobs", "tiny.lock")
	in := filepath.Join(dir, "models", "tiny_decoder.tflite")
	out := filepath.Join(dir, "out", "tiny_q8.tflite")
	status := func(t *testing.T, args ...string) (string, string) {
		t.Helper()
		code, r, stderr := runJSON(t, append(args, job)...)
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		return r.Jobs[0].Status, r.Jobs[0].Reason + "\n" + stderr
	}
	if s, log := status(t); s != "ok" {
		t.Fatalf("first run: %s\n%s", s, log)
	}
	first := snapshot(t, dir)
	s, log := status(t)
	if s != "skipped" || !strings.Contains(log, "up to date with "+lock) || !strings.Contains(log, "up to date: skipped") || strings.Contains(log, `"stage":"quantize"`) {
		t.Fatalf("second run: %s\n%s", s, log)
	}
	delete(first, filepath.Join("jobs", "tiny.lock.stat"))
	now := snapshot(t, dir)
	delete(now, filepath.Join("jobs", "tiny.lock.stat"))
	sameSnapshot(t, "skipped run", first, now)
	code, stdout, stderr := e2eRun(t, "run", job)
	if code != 0 || !strings.Contains(stderr, "skipped  tiny") || !strings.Contains(stderr, "up to date with") {
		t.Fatalf("summary of a skipped run: %s%s", stdout, stderr)
	}

	for _, tc := range []struct {
		name, why string
		change    func(t *testing.T)
	}{
		{"input replaced with the same size and mtime", "input ../models/tiny_decoder.tflite changed", func(t *testing.T) {
			fi, _ := os.Stat(in)
			b, _ := os.ReadFile(in)
			b[len(b)/2] ^= 1
			tmp := in + ".new"
			os.WriteFile(tmp, b, 0o644)
			os.Chtimes(tmp, fi.ModTime(), fi.ModTime())
			if err := os.Rename(tmp, in); err != nil {
				t.Fatal(err)
			}
		}},
		{"input edited in place, mtime set back", "input ../models/tiny_decoder.tflite changed", func(t *testing.T) {
			fi, _ := os.Stat(in)
			flipByte(t, in, fi.Size()/3)
			os.Chtimes(in, fi.ModTime(), fi.ModTime())
		}},
		{"output deleted", "output ../out/tiny_q8.tflite is missing", func(t *testing.T) { os.Remove(out) }},
		{"output edited, mtime set back", "output ../out/tiny_q8.tflite differs from the lock", func(t *testing.T) {
			fi, _ := os.Stat(out)
			flipByte(t, out, 100)
			os.Chtimes(out, fi.ModTime(), fi.ModTime())
		}},
		{"job file changed", "job file tiny.yaml changed", func(t *testing.T) {
			b, _ := os.ReadFile(job)
			os.WriteFile(job, append(b, []byte("# a comment\n")...), 0o644)
		}},
		{"preset definition changed", "output ../out/tiny_fp16.tflite: recipe name=fp16 suffix=fp16 default=fp16, was name=fp16 suffix=fp16 default=weight_only_int8", func(t *testing.T) {
			// As if the lock had been written by a qpipe whose fp16
			// preset meant something else (recipes.yaml is embedded:
			// another definition is another binary with the same lock).
			b, _ := os.ReadFile(lock)
			os.WriteFile(lock, []byte(strings.Replace(string(b), "recipe name=fp16 suffix=fp16 default=fp16", "recipe name=fp16 suffix=fp16 default=weight_only_int8", 1)), 0o644)
		}},
		{"another qpipe version", "qpipe version v9.9.9, was dev", func(t *testing.T) { version = "v9.9.9" }},
		{"another qpipe build", "qpipe build sha256:", func(t *testing.T) {
			b, _ := os.ReadFile(lock)
			os.WriteFile(lock, []byte(strings.Replace(string(b), "\nbuild sha256:", "\nbuild sha256:0", 1)), 0o644)
		}},
		{"another option", "options strict-reference=true, were strict-reference=false", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// From an up-to-date job (the previous case may have left a
			// lock of another version or options).
			version = "dev"
			status(t)
			settle(t, dir)
			if s, log := status(t); s != "skipped" {
				t.Fatalf("before the change: %s\n%s", s, log)
			}
			args := []string{}
			if tc.change != nil {
				tc.change(t)
			} else {
				args = append(args, "--strict-reference")
			}
			defer func() { version = "dev" }()
			s, log := status(t, args...)
			if s != "ok" || !strings.Contains(log, "not up to date: "+tc.why) {
				t.Fatalf("after the change: %s, want a redo because %q\n%s", s, tc.why, log)
			}
			if code, _, stderr := e2eRun(t, append([]string{"run", "--check"}, append(args, job)...)...); code != 0 {
				t.Fatalf("--check after the redo: exit %d\n%s", code, stderr)
			}
		})
	}

	// --force redoes an up-to-date job.
	settle(t, dir)
	if s, log := status(t, "--force"); s != "ok" || !strings.Contains(log, `"stage":"quantize"`) {
		t.Fatalf("--force: %s\n%s", s, log)
	}
}

func TestLocked(t *testing.T) {
	dir := t.TempDir()
	job := lockProject(t, dir, "tiny", "tiny_decoder.tflite", "dynamic_int8")
	lock := filepath.Join(dir, "jobs", "tiny.lock")
	out := filepath.Join(dir, "out", "tiny_q8.tflite")
	if code, _, stderr := e2eRun(t, "run", "--locked", job); code != 1 || !strings.Contains(stderr, "no lock file") || !strings.Contains(stderr, "--locked does not create one") {
		t.Fatalf("--locked without a lock: exit %d\n%s", code, stderr)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("--locked without a lock wrote the output")
	}
	if code, _, stderr := e2eRun(t, "run", job); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	want := e2eSHA(t, out)
	lockBytes, _ := os.ReadFile(lock)

	// A deleted output is rebuilt: the lock does not change.
	os.Remove(out)
	if code, r, stderr := runJSON(t, "--locked", job); code != 0 || r.Jobs[0].Status != "ok" || e2eSHA(t, out) != want {
		t.Fatalf("--locked with a deleted output: exit %d %+v\n%s", code, r, stderr)
	}
	if s := e2eFiles(t, filepath.Join(dir, "out")); len(s) != 1 {
		t.Fatalf("staging left files: %v", s)
	}

	// A changed job would change the lock: fail, touch nothing.
	os.WriteFile(job, []byte(strings.Replace(string(mustRead(t, job)), "dynamic_int8", "fp16", 1)), 0o644)
	before := snapshot(t, dir)
	code, _, stderr := e2eRun(t, "run", "--locked", job)
	if code != 1 || !strings.Contains(stderr, "would change (--locked)") || !strings.Contains(stderr, "job file tiny.yaml changed") {
		t.Fatalf("--locked with a changed job: exit %d\n%s", code, stderr)
	}
	after := snapshot(t, dir)
	delete(after, filepath.Join("jobs", "tiny.lock.stat"))
	delete(before, filepath.Join("jobs", "tiny.lock.stat"))
	sameSnapshot(t, "--locked refusal", before, after)
	if string(mustRead(t, lock)) != string(lockBytes) {
		t.Fatal("--locked changed the lock")
	}

	for _, bad := range [][]string{{"--check", "--force"}, {"--check", "--locked"}, {"--force", "--locked"}, {"--jobs", "0"}, {"--shard", "3/3"}, {"--shard", "x"}, {"--memory", "lots"}} {
		if code, _, stderr := e2eRun(t, append(append([]string{"run"}, bad...), job)...); code != 2 {
			t.Errorf("run %v: exit %d, want 2\n%s", bad, code, stderr)
		}
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBrokenLockFile(t *testing.T) {
	dir := t.TempDir()
	job := lockProject(t, dir, "tiny", "tiny_decoder.tflite", "dynamic_int8")
	lock := filepath.Join(dir, "jobs", "tiny.lock")
	os.WriteFile(lock, []byte("lock 1\nnonsense here\n"), 0o644)
	for _, flag := range []string{"--check", "--locked"} {
		if code, _, stderr := e2eRun(t, "run", flag, job); code != 1 || !strings.Contains(stderr, lock+":2: unknown line \\\"nonsense\\\"") {
			t.Errorf("%s with a broken lock: exit %d\n%s", flag, code, stderr)
		}
	}
	// A plain run warns and rewrites it.
	code, _, stderr := e2eRun(t, "run", job)
	if code != 0 || !strings.Contains(stderr, "it will be rewritten") {
		t.Fatalf("run with a broken lock: exit %d\n%s", code, stderr)
	}
	if code, _, stderr := e2eRun(t, "run", "--check", job); code != 0 {
		t.Fatalf("--check after the rewrite: exit %d\n%s", code, stderr)
	}
}

// shardModels are seven real models of different kinds for seven jobs.
var shardModels = []string{
	"tiny_decoder.tflite", "aeq_single_fc.tflite", "aeq_conv_fc_mnist.tflite", "tflm_hello_world_float.tflite",
	"aeq_embedding_lookup.tflite", "aeq_branching_conv_fc.tflite", "aeq_weight_sharing_fcs.tflite",
}

func shardProject(t *testing.T, dir string) []string {
	t.Helper()
	var jobs []string
	for i, m := range shardModels {
		jobs = append(jobs, lockProject(t, dir, "job"+string(rune('a'+i)), m, "dynamic_int8, fp16"))
	}
	return jobs
}

// outputsAndLocks maps every output and lock under dir to its sha256.
func outputsAndLocks(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, rel := range e2eFiles(t, dir) {
		if strings.HasSuffix(rel, ".tflite") && strings.HasPrefix(rel, "out") || strings.HasSuffix(rel, ".lock") {
			out[rel] = e2eSHA(t, filepath.Join(dir, rel))
		}
	}
	return out
}

func TestShardsMatchSerialRun(t *testing.T) {
	serial := t.TempDir()
	jobs := shardProject(t, serial)
	if code, r, stderr := runJSON(t, jobs...); code != 0 || len(r.Jobs) != 7 {
		t.Fatalf("serial run: exit %d\n%s", code, stderr)
	}
	want := outputsAndLocks(t, serial)
	if len(want) != 7*3 {
		t.Fatalf("serial run wrote %d outputs and locks, want 21: %v", len(want), want)
	}
	for _, tc := range []struct {
		count     int
		processes bool
	}{{1, false}, {2, false}, {3, false}, {5, false}, {1, true}, {2, true}, {3, true}, {5, true}} {
		count := tc.count
		name := strconv.Itoa(count) + " goroutines"
		if tc.processes {
			name = strconv.Itoa(count) + " processes"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			jobs := shardProject(t, dir)
			reports := make([]runReport, count)
			codes := make([]int, count)
			logs := make([]string, count)
			var wg sync.WaitGroup
			for i := range count {
				// Each shard gets the files in another order, some by
				// absolute path: the partition must not depend on it.
				args := []string{"run", "--json", "--shard", fmt.Sprintf("%d/%d", i, count)}
				for k := range jobs {
					p := jobs[(k+i)%len(jobs)]
					if k%2 == 1 {
						p = relToWD(t, p)
					}
					args = append(args, p)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					var o, e bytes.Buffer
					if tc.processes {
						codes[i] = qpipeProcess(t, args, &o, &e)
					} else {
						codes[i] = runMain(args, &o, &e)
					}
					logs[i] = e.String()
					json.Unmarshal(o.Bytes(), &reports[i])
				}()
			}
			wg.Wait()
			written := map[string]int{}
			ran := 0
			for i, r := range reports {
				if codes[i] != 0 {
					t.Fatalf("shard %d/%d: exit %d\n%s", i, count, codes[i], logs[i])
				}
				if n := len(r.Jobs); n < 7/count || n > (7+count-1)/count {
					t.Errorf("shard %d/%d ran %d jobs; want an even share of 7", i, count, n)
				}
				for _, j := range r.Jobs {
					ran++
					if j.Status != "ok" {
						t.Errorf("shard %d/%d: job %s %s", i, count, j.Name, j.Status)
					}
					for _, o := range j.Outputs {
						written[o.Path]++
					}
				}
				written["log lines"] += strings.Count(logs[i], `"message":"wrote"`)
			}
			if ran != 7 || written["log lines"] != 14 {
				t.Errorf("%d shards ran %d jobs and logged %d writes; want 7 and 14", count, ran, written["log lines"])
			}
			delete(written, "log lines")
			if len(written) != 14 {
				t.Errorf("%d outputs reported, want 14", len(written))
			}
			for p, n := range written {
				if n != 1 {
					t.Errorf("%s written %d times", p, n)
				}
			}
			got := outputsAndLocks(t, dir)
			if len(got) != len(want) {
				t.Errorf("%d outputs and locks, serial %d", len(got), len(want))
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s differs from the serial run's", k)
				}
			}
		})
	}

	// --jobs: the same bytes, with room for three at once and with a
	// budget too small for even one (they then run one at a time).
	for _, args := range [][]string{{"--jobs", "3"}, {"--jobs", "4", "--memory", "1MiB"}} {
		dir := t.TempDir()
		jobs := shardProject(t, dir)
		code, r, stderr := runJSON(t, append(args, jobs...)...)
		if code != 0 || len(r.Jobs) != 7 {
			t.Fatalf("%v: exit %d\n%s", args, code, stderr)
		}
		for i, j := range r.Jobs {
			if j.Name != "job"+string(rune('a'+i)) || j.Status != "ok" {
				t.Errorf("%v: report %d is %s %s", args, i, j.Name, j.Status)
			}
		}
		got := outputsAndLocks(t, dir)
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%v: %s differs from the serial run's", args, k)
			}
		}
		// And the next run skips them all.
		_, r, _ = runJSON(t, append(args, jobs...)...)
		for _, j := range r.Jobs {
			if j.Status != "skipped" {
				t.Errorf("%v, second run: %s %s", args, j.Name, j.Status)
			}
		}
	}
}

func TestShardOutputCollision(t *testing.T) {
	dir := t.TempDir()
	a := lockProject(t, dir, "same", "aeq_single_fc.tflite", "dynamic_int8")
	b := e2eWrite(t, filepath.Join(dir, "jobs", "other.yaml"), strings.Replace(string(mustRead(t, a)), "../models/aeq_single_fc.tflite", "../models/aeq_single_fc.tflite", 1))
	code, _, stderr := e2eRun(t, "run", "--shard", "0/2", a, b)
	if code != 1 || !strings.Contains(stderr, "both write") || !strings.Contains(stderr, "same_q8.tflite") {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
}

func relToWD(t *testing.T, p string) string {
	t.Helper()
	wd, _ := os.Getwd()
	r, err := filepath.Rel(wd, p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestLockAEQRecipe: a job's {aeq: FILE} recipe is locked by its rules, so
// editing the recipe file (not the job file) redoes the job.
func TestLockAEQRecipe(t *testing.T) {
	dir := t.TempDir()
	e2eCopy(t, dir, "aeq_conv_fc_mnist.tflite")
	recipe := e2eWrite(t, filepath.Join(dir, "r #1.json"), aeqWeightOnlyAsym)
	job := e2eWrite(t, filepath.Join(dir, "job.yaml"), `version: 1
stages:
  - load: {path: aeq_conv_fc_mnist.tflite}
  - quantize: {recipe: {aeq: "r #1.json"}}
  - serialize: {path: "out/{name}_{suffix}.tflite"}
`)
	if code, _, stderr := e2eRun(t, "run", job); code != 0 {
		t.Fatalf("run: exit %d\n%s", code, stderr)
	}
	lock := string(mustRead(t, filepath.Join(dir, "job.lock")))
	if !strings.Contains(lock, ` rules=[0:".*"/*=weight_only_int8_asym]`) {
		t.Fatalf("lock does not record the recipe's rules:\n%s", lock)
	}
	settle(t, dir)
	if _, r, _ := runJSON(t, job); r.Jobs[0].Status != "skipped" {
		t.Fatalf("unchanged: %s", r.Jobs[0].Status)
	}
	e2eWrite(t, recipe, strings.Replace(aeqWeightOnlyAsym, `"regex": ".*"`, `"regex": "#.*"`, 1))
	code, r, stderr := runJSON(t, job)
	if code != 0 || r.Jobs[0].Status != "ok" || !strings.Contains(stderr, `x23.*\"/*=weight_only_int8_asym], was name=r__1 suffix=r__1 rules=[0:\".*\"/*=weight_only_int8_asym]`) {
		t.Fatalf("after editing the recipe file: exit %d %s\n%s", code, r.Jobs[0].Status, stderr)
	}
	if code, _, stderr := e2eRun(t, "run", "--check", job); code != 0 {
		t.Fatalf("--check: exit %d\n%s", code, stderr)
	}
}

// TestRunFolder: a folder argument runs the job files in it (the
// container has no shell to expand a glob); shards agree on it.
func TestRunFolder(t *testing.T) {
	dir := t.TempDir()
	shardProject(t, dir)
	jobs := filepath.Join(dir, "jobs")
	os.WriteFile(filepath.Join(jobs, "notes.txt"), []byte("not a job"), 0o644)
	var names []string
	for i := range 3 {
		code, r, stderr := runJSON(t, "--shard", fmt.Sprintf("%d/3", i), jobs)
		if code != 0 {
			t.Fatalf("shard %d: exit %d\n%s", i, code, stderr)
		}
		for _, j := range r.Jobs {
			names = append(names, j.Name)
		}
	}
	slices.Sort(names)
	if strings.Join(names, ",") != "joba,jobb,jobc,jobd,jobe,jobf,jobg" {
		t.Fatalf("3 shards of the folder ran %v", names)
	}
	// The second run, of the whole folder, skips all seven.
	_, r, _ := runJSON(t, jobs)
	if len(r.Jobs) != 7 {
		t.Fatalf("%d jobs", len(r.Jobs))
	}
	for _, j := range r.Jobs {
		if j.Status != "skipped" {
			t.Errorf("%s: %s", j.Name, j.Status)
		}
	}
	empty := t.TempDir()
	if code, _, stderr := e2eRun(t, "run", empty); code != 2 || !strings.Contains(stderr, "no job files (*.yaml, *.yml) in the folder "+empty) {
		t.Fatalf("empty folder: exit %d\n%s", code, stderr)
	}
}

// TestMain lets the test binary act as qpipe in a child process (see
// qpipeProcess): same code, same build, so its locks match in-process runs.
func TestMain(m *testing.M) {
	if os.Getenv("QPIPE_TEST_AS_QPIPE") == "1" {
		os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// qpipeProcess runs qpipe ARGS as a separate process and returns its exit
// code.
func qpipeProcess(t *testing.T, args []string, stdout, stderr *bytes.Buffer) int {
	exe, err := os.Executable()
	if err != nil {
		t.Error(err)
		return -1
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), "QPIPE_TEST_AS_QPIPE=1")
	cmd.Stdout, cmd.Stderr = stdout, stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Error(err)
		return -1
	}
	return 0
}
