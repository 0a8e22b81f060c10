package runner

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/pipeline"
	"github.com/qpipe/qpipe/stages"
)

func TestShardPartition(t *testing.T) {
	wd, _ := os.Getwd()
	root := t.TempDir()
	var files []string
	for _, name := range []string{"a.yaml", "b.yaml", "sub/c.yaml", "sub/d.yaml", "e.yaml", "f.yaml", "g.yaml"} {
		p := filepath.Join(root, "jobs", name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte("not a job"), 0o644)
		files = append(files, p)
	}
	keys, err := shardKeys(files)
	if err != nil || keys[2] != "sub/c.yaml" || keys[0] != "a.yaml" {
		t.Fatalf("keys %v %v", keys, err)
	}
	for _, count := range []int{1, 2, 3, 5, 7, 9} {
		seen := map[string]int{}
		for i := range count {
			// The same files by another route: shuffled, relative, duplicated.
			var given []string
			for k := range files {
				p := files[(k*3+i)%len(files)]
				if k%3 == 0 {
					if r, err := filepath.Rel(wd, p); err == nil {
						p = r
					}
				}
				given = append(given, p)
			}
			given = append(given, files[0])
			mine, err := ShardJobs(given, i, count)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range mine {
				a, _ := filepath.Abs(p)
				seen[a]++
			}
		}
		if len(seen) != len(files) {
			t.Errorf("%d shards cover %d of %d files", count, len(seen), len(files))
		}
		for p, n := range seen {
			if n != 1 {
				t.Errorf("%d shards: %s given to %d shards", count, p, n)
			}
		}
	}
	// Another mount point, same names: the same partition.
	other := t.TempDir()
	var moved []string
	for _, f := range files {
		rel, _ := filepath.Rel(root, f)
		p := filepath.Join(other, "mnt", "x", rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte("not a job"), 0o644)
		moved = append(moved, p)
	}
	for i := range 3 {
		a, _ := ShardJobs(files, i, 3)
		b, _ := ShardJobs(moved, i, 3)
		for k := range a {
			ra, _ := filepath.Rel(root, a[k])
			rb, _ := filepath.Rel(filepath.Join(other, "mnt", "x"), b[k])
			if ra != rb {
				t.Errorf("shard %d/3: %s here, %s on the other mount", i, ra, rb)
			}
		}
	}
}

// TestEstimateMemoryRunsNoCalibration: `run --jobs`' memory estimate of a
// calibrated (or gptq) job plans it without the calibration pass: nothing
// is written to the cache folder, and the estimate is the full dry run's.
func TestEstimateMemoryRunsNoCalibration(t *testing.T) {
	model, err := filepath.Abs("../../testdata/models/tiny_decoder.tflite")
	if err != nil {
		t.Fatal(err)
	}
	for _, scales := range []string{"calibrated", "gptq"} {
		t.Run(scales, func(t *testing.T) {
			cacheDir := t.TempDir()
			t.Setenv("QPIPE_CACHE_DIR", cacheDir)
			dir := t.TempDir()
			job := filepath.Join(dir, "job.yaml")
			text := "version: 1\nname: c\nstages:\n  - load: {path: " + model + "}\n  - quantize: {recipe: dynamic_int4_block32, scales: " + scales + "}\n  - serialize: {path: out.tflite}\n"
			if err := os.WriteFile(job, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			got := estimateMemory(context.Background(), job)
			if got <= pipeline.MemoryBase {
				t.Fatalf("estimate %d, want above the fixed %d", got, pipeline.MemoryBase)
			}
			if entries, _ := os.ReadDir(cacheDir); len(entries) != 0 {
				t.Errorf("the estimate wrote %d entries to the cache folder (a calibration pass ran)", len(entries))
			}
			cfg, err := config.LoadJob(job)
			if err != nil {
				t.Fatal(err)
			}
			state := &pipeline.State{Log: zerolog.Nop(), DryRun: true}
			branches, err := Execute(context.Background(), cfg, stages.Options{}, state, nil)
			stages.Close(state)
			if err != nil {
				t.Fatal(err)
			}
			// A gptq job's estimate adds its calibration rows and factors
			// (TestGPTQMemoryEstimate), which only the estimate plans.
			want := pipeline.MemoryEstimate([]*pipeline.Plan{branches[0].Plan})
			if scales == "gptq" && got <= want {
				t.Errorf("gptq estimate %d, not above the dry run's %d without the calibration rows and factors", got, want)
			}
			if scales != "gptq" && got != want {
				t.Errorf("estimate %d, the full dry run's %d", got, want)
			}
		})
	}
}
