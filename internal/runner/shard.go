package runner

// Scaling out a run: --shard splits the job files between processes
// (machines, Kubernetes pods), --jobs runs several on one machine within a
// memory budget (README: Shards and parallel jobs).

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/rs/zerolog"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/pipeline"
	"github.com/qpipe/qpipe/stages"
)

// ParseShard reads INDEX/COUNT with 0 <= INDEX < COUNT.
func ParseShard(s string) (index, count int, err error) {
	a, b, ok := strings.Cut(s, "/")
	index, err1 := strconv.Atoi(a)
	count, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || count < 1 || index < 0 || index >= count {
		return 0, 0, fmt.Errorf("want INDEX/COUNT with 0 <= INDEX < COUNT, e.g. 0/3")
	}
	return index, count, nil
}

// shardKeys names each job file by its path relative to the deepest folder
// that holds all of them, '/'-separated: the same on every machine that is
// given the same files, whatever the mount point or the working directory
// (/data/jobs/a.yaml on a pod and jobs/a.yaml on a laptop are both a.yaml).
func shardKeys(paths []string) ([]string, error) {
	abs := make([]string, len(paths))
	for i, p := range paths {
		a, err := filepath.Abs(p)
		if err != nil {
			return nil, err
		}
		abs[i] = a
	}
	root := filepath.Dir(abs[0])
	for _, a := range abs[1:] {
		for !within(root, a) {
			parent := filepath.Dir(root)
			if parent == root {
				break
			}
			root = parent
		}
	}
	keys := make([]string, len(abs))
	for i, a := range abs {
		r, err := filepath.Rel(root, a)
		if err != nil {
			return nil, err
		}
		keys[i] = filepath.ToSlash(r)
	}
	return keys, nil
}

func within(dir, path string) bool {
	r, err := filepath.Rel(dir, path)
	return err == nil && r != ".." && !strings.HasPrefix(r, ".."+string(filepath.Separator))
}

// ShardJobs returns the job files of shard index out of count. The files
// are named by shardKeys, sorted by name, and dealt out in turn: file i of
// the sorted list goes to shard i mod count. Every shard gets within one
// file of the same number, and the partition depends only on the set of
// files, not on their order on the command line. A file given twice (by
// any path) counts once. Two job files that write the same output are
// refused: shards would write it twice, concurrently.
func ShardJobs(paths []string, index, count int) ([]string, error) {
	keys, err := shardKeys(paths)
	if err != nil {
		return nil, err
	}
	byKey := map[string]string{}
	for i, k := range keys {
		if _, dup := byKey[k]; !dup {
			byKey[k] = paths[i]
		}
	}
	sorted := make([]string, 0, len(byKey))
	for k := range byKey {
		sorted = append(sorted, k)
	}
	slices.Sort(sorted)
	all := make([]string, len(sorted))
	for i, k := range sorted {
		all[i] = byKey[k]
	}
	if err := outputCollisions(all); err != nil {
		return nil, err
	}
	var mine []string
	for i, k := range sorted {
		if i%count == index {
			mine = append(mine, byKey[k])
		}
	}
	return mine, nil
}

// outputCollisions fails when two job files write the same output. Job
// files that do not parse are left to their own run to report.
func outputCollisions(paths []string) error {
	writer := map[string]string{}
	for _, p := range paths {
		job, err := config.LoadJob(p)
		if err != nil {
			continue
		}
		for _, o := range job.Outputs() {
			a, err := filepath.Abs(o.Path)
			if err != nil {
				continue
			}
			if other, dup := writer[a]; dup && other != p {
				return fmt.Errorf("job files %s and %s both write %s; give each output one job (shards would write it twice)", other, p, o.Path)
			}
			writer[a] = p
		}
	}
	return nil
}

// MemoryBudget parses --memory, or picks 3/4 of the memory available to
// this process: MemAvailable (/proc/meminfo), capped by the cgroup's
// memory.max inside a container. 0 means no bound known.
func MemoryBudget(s string) (int64, error) {
	if s != "" {
		return config.ParseSize(s)
	}
	avail := meminfo("MemAvailable")
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && (avail == 0 || v < avail) {
			avail = v
		}
	}
	return avail / 4 * 3, nil
}

func meminfo(key string) int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && k == key {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err == nil {
				return n << 10
			}
		}
	}
	return 0
}

// estimateMemory plans the job (a dry run: load and annotate, no weight
// read, no calibration pass, no scale search) and estimates its peak memory; 0 when it cannot be planned (the
// run itself will report why).
func estimateMemory(ctx context.Context, path string) int64 {
	job, err := config.LoadJob(path)
	if err != nil {
		return 0
	}
	state := &pipeline.State{Log: zerolog.Nop(), DryRun: true, Estimate: true}
	branches, err := Execute(ctx, job, stages.Options{}, state, nil)
	stages.Close(state)
	if err != nil {
		return 0
	}
	plans := make([]*pipeline.Plan, len(branches))
	for i, b := range branches {
		plans[i] = b.Plan
	}
	return pipeline.MemoryEstimate(plans)
}

// concurrent runs up to n job files at once, starting each in command-line
// order when a slot is free and its estimated memory fits in what the
// running ones leave of budget (a job larger than the whole budget runs
// alone). Reports come back in command-line order; outputs are the same as
// a serial run's (each job's bytes do not depend on what else runs).
func (rn *Runner) concurrent(ctx context.Context, jobs []string, n int, budget int64, keepGoing bool) []*pipeline.JobReport {
	reports := make([]*pipeline.JobReport, len(jobs))
	var (
		mu      sync.Mutex
		cond    = sync.NewCond(&mu)
		running int
		used    int64
		stop    bool
		wg      sync.WaitGroup
	)
	go func() { <-ctx.Done(); mu.Lock(); cond.Broadcast(); mu.Unlock() }()
	for i, path := range jobs {
		need := estimateMemory(ctx, path)
		mu.Lock()
		for !stop && ctx.Err() == nil && running > 0 && (running >= n || (budget > 0 && used+need > budget)) {
			cond.Wait()
		}
		if stop || ctx.Err() != nil {
			mu.Unlock()
			break
		}
		running++
		used += need
		mu.Unlock()
		rn.Log.Debug().Str("job", path).Int64("memory_estimate", need).Int64("budget", budget).Msg("start")
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rn.Job(ctx, path)
			mu.Lock()
			reports[i] = r
			running--
			used -= need
			if r.Status == pipeline.StatusFailed && !keepGoing {
				stop = true
			}
			cond.Broadcast()
			mu.Unlock()
		}()
	}
	wg.Wait()
	for i, r := range reports {
		if r == nil {
			reports[i] = notRun(jobs[i])
		}
	}
	return reports
}

// ErrNoJobFiles is ExpandJobArgs's error for a folder without job files.
var ErrNoJobFiles = errors.New("no job files (*.yaml, *.yml)")

// ExpandJobArgs replaces a folder among the job arguments by the job files
// it holds (*.yaml and *.yml, not in subfolders, sorted), so that a
// container without a shell can be given a folder instead of a glob.
func ExpandJobArgs(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		fi, err := os.Stat(a)
		if err != nil || !fi.IsDir() {
			out = append(out, a) // a file, or missing: its run says why
			continue
		}
		ents, err := os.ReadDir(a)
		if err != nil {
			return nil, err
		}
		n := len(out)
		for _, e := range ents {
			if ext := filepath.Ext(e.Name()); !e.IsDir() && (ext == ".yaml" || ext == ".yml") {
				out = append(out, filepath.Join(a, e.Name()))
			}
		}
		if len(out) == n {
			return nil, fmt.Errorf("%w in the folder %s", ErrNoJobFiles, a)
		}
	}
	return out, nil
}
