//go:build linux

// Command bench measures `qpipe quantize` against a plain `cp` of the same
// input, on generated float decoders of about 1 GB and 4 GB (or 26.8 GB with
// -sizes 7b): wall time, user and system CPU time, minor and major page
// faults (the child's rusage), throughput, peak anonymous and file-backed
// memory, output size, and the ratio of qpipe's time to cp's. Runs are interleaved
// (qpipe, cp, qpipe, cp, …) after a warm-up, and medians with min–max are
// reported, because copying gigabytes on a VM is noisy.
//
//	go run ./tools/bench [-sizes 1gb,4gb] [-runs 3] [-schemes ...] [-dir .cache/bench] [-base OLD-QPIPE]
//	go run ./tools/bench -sizes 1gb -measure eval,calibrated,budget [-runs 1]
//
// With -base, a second qpipe binary (main before a change, say) runs in the
// same rounds (base, qpipe, cp, base, qpipe, cp, …), each with its ratio to
// the cp of its round: on a shared machine, the only fair before/after.
//
// With -measure eval,calibrated,budget it measures instead what qpipe's
// measuring commands cost on the same models (-runs runs from a warm page
// cache, no warm-up run, caches off): `qpipe eval --samples 8 --seq 64` of the float model against
// its dynamic_int4_block32 output; `quantize --scales calibrated` with
// dynamic_int4_block32; and `quantize --budget-size` at the size of the
// uniform dynamic_int4_block128 output. Times are next to min-max int4's.
//
// Generated models are cached in -dir between runs. Outputs are deleted after
// each run and the page cache is flushed (sync) outside the timed region, so
// that one run's dirty pages do not slow the next.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type sample struct {
	wall             time.Duration
	user, sys        time.Duration // CPU time of the child
	minflt, majflt   int64         // its page faults
	rssAnon, rssFile int64         // peak, bytes
	outBytes         int64
}

func main() {
	sizes := flag.String("sizes", "1gb,4gb", "generator presets to measure (1gb, 4gb, 7b)")
	runs := flag.Int("runs", 3, "timed runs per command, after one warm-up")
	schemes := flag.String("schemes", "dynamic_int8,weight_only_int8,fp16,dynamic_int4_block32", "presets to measure; PRESET:SCALES adds --scales SCALES (dynamic_int4_block32:search)")
	dir := flag.String("dir", ".cache/bench", "where models are generated and cached")
	qpipe := flag.String("qpipe", "", "qpipe binary (default: build ./cmd/qpipe into -dir)")
	base := flag.String("base", "", "another qpipe binary (say, main before a change) measured in the same interleaved rounds")
	measures := flag.String("measure", "", "measure qpipe's measuring commands instead: eval,calibrated,budget")
	flag.Parse()

	must(os.MkdirAll(*dir, 0o755))
	bin := *qpipe
	if bin == "" {
		bin = filepath.Join(*dir, "qpipe")
		run("go", "build", "-o", bin, "./cmd/qpipe")
	}
	fmt.Printf("qpipe bench: %s, GOMAXPROCS=%s, %d run(s) after a warm-up, load average %s\n\n", time.Now().Format(time.DateTime), envOr("GOMAXPROCS", "all cores"), *runs, loadavg())
	fmt.Printf("%-6s %-27s %22s %6s %6s %8s %6s %6s %22s %9s %9s %8s\n", "model", "command", "wall s (median, min-max)",
		"user s", "sys s", "minflt", "majflt", "GB/s", "ratio to cp (med, min-max)", "anon MiB", "file MiB", "out MiB")
	for _, size := range strings.Split(*sizes, ",") {
		model := filepath.Join(*dir, "gen_"+size+".tflite")
		if _, err := os.Stat(model); err != nil {
			need := map[string]int64{"1gb": 4, "4gb": 12, "7b": 64}[size] << 30 // model, its cp and the outputs
			checkDisk(*dir, need)
			fmt.Fprintf(os.Stderr, "generating %s ...\n", model)
			run(bin, "gen", "--preset", size, model)
		}
		fi, err := os.Stat(model)
		must(err)
		in := fi.Size()
		warm(model)
		fmt.Printf("%-6s input path: %s\n", size, inputPath(bin, model, filepath.Join(*dir, "out_probe.tflite")))
		if *measures != "" {
			measureCommands(bin, *base, size, model, *dir, strings.Split(*measures, ","), *runs, in)
			continue
		}
		for _, sc := range strings.Split(*schemes, ",") {
			preset, scales, _ := strings.Cut(sc, ":")
			out := filepath.Join(*dir, "out_"+strings.ReplaceAll(sc, ":", "_")+".tflite")
			cpOut := filepath.Join(*dir, "cp_out.tflite")
			qcmd := []string{bin, "quantize", "--recipe", preset, model, out}
			if scales != "" {
				qcmd = append(qcmd, "--scales", scales)
			}
			bcmd := append([]string{*base}, qcmd[1:]...)
			ccmd := []string{"cp", model, cpOut}
			if *base != "" {
				measure(bcmd, out)
			}
			measure(qcmd, out) // warm-up
			measure(ccmd, cpOut)
			var bs, qs, cs []sample
			for i := 0; i < *runs; i++ {
				if *base != "" {
					bs = append(bs, measure(bcmd, out))
				}
				qs = append(qs, measure(qcmd, out))
				cs = append(cs, measure(ccmd, cpOut))
			}
			ratios := func(s []sample) []float64 {
				r := make([]float64, len(s))
				for i := range s {
					r[i] = s[i].wall.Seconds() / cs[i].wall.Seconds()
				}
				return r
			}
			if *base != "" {
				report(size, "base "+sc, bs, in, ratios(bs))
			}
			report(size, "qpipe "+sc, qs, in, ratios(qs))
			report(size, "cp", cs, in, nil)
			fmt.Printf("%-6s load average %s\n", "", loadavg())
		}
	}
}

// report prints one line: medians of wall, CPU times and faults, peaks of
// memory.
func report(size, name string, s []sample, in int64, ratios []float64) {
	walls := make([]float64, len(s))
	users := make([]float64, len(s))
	syss := make([]float64, len(s))
	minflts := make([]float64, len(s))
	majflts := make([]float64, len(s))
	var anon, file, out int64
	for i, x := range s {
		walls[i] = x.wall.Seconds()
		users[i], syss[i] = x.user.Seconds(), x.sys.Seconds()
		minflts[i], majflts[i] = float64(x.minflt), float64(x.majflt)
		anon = max(anon, x.rssAnon)
		file = max(file, x.rssFile)
		out = x.outBytes
	}
	med, lo, hi := stats(walls)
	r := ""
	if ratios != nil {
		rm, rl, rh := stats(ratios)
		r = fmt.Sprintf("%.2f (%.2f-%.2f)", rm, rl, rh)
	}
	median := func(x []float64) float64 { m, _, _ := stats(x); return m }
	fmt.Printf("%-6s %-27s %8.2f (%5.2f-%5.2f) %6.2f %6.2f %8.0f %6.0f %6.2f %22s %9.0f %9.0f %8.0f\n", size, name, med, lo, hi,
		median(users), median(syss), median(minflts), median(majflts),
		float64(in)/1e9/med, r, float64(anon)/(1<<20), float64(file)/(1<<20), float64(out)/(1<<20))
}

func stats(x []float64) (med, lo, hi float64) {
	s := append([]float64(nil), x...)
	sort.Float64s(s)
	return s[len(s)/2], s[0], s[len(s)-1]
}

// measureCommands is -measure: eval, calibrated scales and a budget on
// model, next to min-max int4 in the same rounds.
func measureCommands(bin, base, size, model, dir string, which []string, runs int, in int64) {
	q32 := filepath.Join(dir, "meas_"+size+"_q4b32.tflite")
	q128 := filepath.Join(dir, "meas_"+size+"_q4b128.tflite")
	run(bin, "quantize", "--recipe", "dynamic_int4_block32", model, q32)
	run(bin, "quantize", "--recipe", "dynamic_int4_block128", model, q128)
	fi, err := os.Stat(q128)
	must(err)
	out := filepath.Join(dir, "meas_out.tflite")
	cmds := map[string][]string{
		"minmax":     {"quantize", "--recipe", "dynamic_int4_block32", model, out},
		"eval":       {"eval", "--samples", "8", "--seq", "64", model, q32},
		"calibrated": {"quantize", "--recipe", "dynamic_int4_block32", "--scales", "calibrated", model, out},
		"budget":     {"quantize", "--budget-size", strconv.FormatInt(fi.Size(), 10), model, out},
	}
	bins := []string{bin}
	if base != "" {
		bins = append(bins, base)
	}
	for _, w := range append([]string{"minmax"}, which...) {
		args, ok := cmds[w]
		if !ok {
			fmt.Fprintf(os.Stderr, "bench: -measure %s: want eval, calibrated or budget\n", w)
			os.Exit(2)
		}
		for _, b := range bins {
			argv := append([]string{b}, args...)
			var ss []sample // no warm-up run: the model is in the page cache (warm) and runs take minutes
			for i := 0; i < runs; i++ {
				ss = append(ss, measure(argv, out))
			}
			name := "qpipe " + w
			if b != bin {
				name = "base " + w
			}
			report(size, name, ss, in, nil)
		}
		fmt.Printf("%-6s load average %s\n", "", loadavg())
	}
	os.Remove(q32)
	os.Remove(q128)
}

// measure runs a command, sampling its memory every 5 ms, and removes its
// output afterwards (after recording its size), then flushes dirty pages.
// Caches are off (QPIPE_CACHE_DIR=off): each run does its whole work.
func measure(argv []string, out string) sample {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "QPIPE_CACHE_DIR=off")
	cmd.Stderr = nil
	start := time.Now()
	must(cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var s sample
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			s.wall = time.Since(start)
			if err != nil {
				fmt.Fprintf(os.Stderr, "%v: %v\n", argv, err)
				os.Exit(1)
			}
			s.user, s.sys = cmd.ProcessState.UserTime(), cmd.ProcessState.SystemTime()
			if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
				s.minflt, s.majflt = ru.Minflt, ru.Majflt
			}
			if fi, err := os.Stat(out); err == nil {
				s.outBytes = fi.Size()
			}
			os.Remove(out)
			syscall.Sync()
			return s
		case <-tick.C:
			a, f := rss(cmd.Process.Pid)
			s.rssAnon, s.rssFile = max(s.rssAnon, a), max(s.rssFile, f)
		}
	}
}

// rss reads RssAnon and RssFile of a process, in bytes.
func rss(pid int) (anon, file int64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "RssAnon:":
			anon = v << 10
		case "RssFile:":
			file = v << 10
		}
	}
	return anon, file
}

// inputPath returns how qpipe reads this model's large weights on this
// machine (mapping or pread, chosen by a probe or QPIPE_INPUT), from its
// debug log of one dynamic_int8 run.
func inputPath(bin, model, out string) string {
	cmd := exec.Command(bin, "quantize", "--recipe", "dynamic_int8", model, out)
	cmd.Env = append(os.Environ(), "QPIPE_LOG_LEVEL=debug")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	os.Remove(out)
	if err != nil {
		return fmt.Sprintf("unknown (%v)", err)
	}
	for _, line := range strings.Split(stderr.String(), "\n") {
		var rec struct{ Input, Message string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Input != "" {
			return rec.Message
		}
	}
	return "unknown (no input line in qpipe's debug log)"
}

// warm reads the model once so that every command starts from a warm page cache.
func warm(path string) {
	f, err := os.Open(path)
	must(err)
	defer f.Close()
	buf := make([]byte, 8<<20)
	for {
		if _, err := f.Read(buf); err != nil {
			return
		}
	}
}

func checkDisk(dir string, need int64) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return
	}
	if free := int64(st.Bavail) * int64(st.Bsize); free < need {
		fmt.Fprintf(os.Stderr, "bench: %s has %.1f GB free; this size needs about %.0f GB (model, outputs and a copy). Free some space or pass -dir.\n", dir, float64(free)/1e9, float64(need)/1e9)
		os.Exit(1)
	}
}

func run(argv ...string) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v: %v\n", argv, err)
		os.Exit(1)
	}
}

// loadavg is the first three fields of /proc/loadavg.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
