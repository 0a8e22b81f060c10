package runner

// Lock files: what a run records next to each job file, how a job is found
// up to date, and the identity of this qpipe (README: Lock files).

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/lockfile"
	"github.com/qpipe/qpipe/pipeline"
)

// Tool is this qpipe, of the given version, as a lock records it. Two qpipes are "the
// same" for up-to-date checks when version, build and platform all match:
// a release build is named by its VCS revision (stamped by `go build` from
// a clean checkout); any other build (`go run`, `go test`, a modified
// checkout, a build with -buildvcs=false) by the sha256 of its own
// executable, so that every rebuild from different sources counts as
// another qpipe and redoes the jobs, while rebuilding the same sources
// (Go builds are reproducible) does not.
func Tool(version string) lockfile.Tool {
	return lockfile.Tool{Version: version, Build: buildID(), Platform: runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH}
}

var buildID = sync.OnceValue(func() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		var rev string
		modified := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if rev != "" && !modified {
			return "rev:" + rev
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return "unknown"
	}
	f, err := lockfile.SHA256(exe)
	if err != nil {
		return "unknown"
	}
	return "sha256:" + f.SHA256
})

// lockOptions are the command-line settings that change output bytes
// (--scales only when given, so that older locks stay valid).
func lockOptions(strictReference bool, scales string) string {
	s := fmt.Sprintf("strict-reference=%t", strictReference)
	if scales != "" {
		s += " scales=" + scales
	}
	return s
}

// canonicalRecipe renders a resolved recipe for the lock: name, suffix and
// every set slot in the fixed order default, embedding, attention,
// feedforward, as slot=SCHEME with per-block overrides in brackets
// (feedforward=dynamic_int4_block256[0=dynamic_int8,14-15=none]), then the
// scope rules of an AI Edge Quantizer recipe. Presets are expanded into
// their slots, so a change of a preset's definition in recipes.yaml
// changes the lock.
func canonicalRecipe(r *config.Recipe) string {
	var b strings.Builder
	fmt.Fprintf(&b, "name=%s suffix=%s", r.Name, r.Suffix)
	if r.Scales != "" {
		fmt.Fprintf(&b, " scales=%s", r.Scales)
	}
	for _, slot := range []struct {
		name string
		rr   *config.RoleRecipe
	}{{"default", r.Default}, {"embedding", r.Embedding}, {"attention", r.Attention}, {"feedforward", r.Feedforward}} {
		if slot.rr == nil {
			continue
		}
		fmt.Fprintf(&b, " %s=", slot.name)
		if slot.rr.All != nil {
			b.WriteString(slot.rr.All.String())
		} else {
			b.WriteString("unset")
		}
		if len(slot.rr.Layers) > 0 {
			layers := append([]config.LayerOverride(nil), slot.rr.Layers...)
			sort.SliceStable(layers, func(i, j int) bool { return layers[i].From < layers[j].From })
			b.WriteByte('[')
			for i, o := range layers {
				if i > 0 {
					b.WriteByte(',')
				}
				fmt.Fprintf(&b, "%s=%s", o.Range(), o.Scheme.String())
			}
			b.WriteByte(']')
		}
	}
	// Scope rules of an AI Edge Quantizer recipe file, in resolution
	// order: INDEX:"REGEX"/OP=SCHEME[,min=N][,skip]. The file's content,
	// not its name, is what counts.
	if len(r.Rules) > 0 {
		b.WriteString(" rules=[")
		for i, rule := range r.Rules {
			if i > 0 {
				b.WriteByte(';')
			}
			op := rule.Op
			if op == "" {
				op = "*"
			}
			pattern := strings.ReplaceAll(strconv.QuoteToASCII(rule.Pattern), "#", `\x23`)
			fmt.Fprintf(&b, "%d:%s/%s=%s", rule.Index, pattern, op, rule.Scheme.String())
			if rule.MinWeightElements > 0 {
				fmt.Fprintf(&b, ",min=%d", rule.MinWeightElements)
			}
			if rule.SkipChecks {
				b.WriteString(",skip")
			}
		}
		b.WriteByte(']')
	}
	return b.String()
}

// expectedLock is the lock a run of job would write, without the digests
// of the input and the outputs (zero Files with the paths filled in).
func expectedLock(tool lockfile.Tool, jobPath string, job *config.Job, strictReference bool, scales string) (*lockfile.Lock, error) {
	data, err := os.ReadFile(jobPath)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	dir := lockDir(jobPath)
	l := &lockfile.Lock{
		Tool:    tool,
		Job:     lockfile.File{Path: lockfile.Rel(dir, jobPath), SHA256: hex.EncodeToString(sum[:])},
		Options: lockOptions(strictReference, scales),
	}
	in := lockfile.Rel(dir, job.Load().Path)
	for _, o := range job.Outputs() {
		l.Outputs = append(l.Outputs, lockfile.Output{
			Recipe: canonicalRecipe(o.Recipe),
			Input:  lockfile.File{Path: in},
			File:   lockfile.File{Path: lockfile.Rel(dir, o.Path)},
		})
	}
	l.Sort()
	return l, nil
}

// lockDir is the folder of a job's lock: the job file's.
func lockDir(jobPath string) string { return filepath.Dir(jobPath) }

// headerDiff compares what does not need reading the input or the outputs:
// qpipe, job file, options, the outputs' paths, recipes and input paths.
func headerDiff(old, want *lockfile.Lock) []string {
	w := *want
	w.Outputs = append([]lockfile.Output(nil), want.Outputs...)
	for i := range w.Outputs {
		if o := old.Output(w.Outputs[i].File.Path); o != nil {
			w.Outputs[i].File = o.File
			if o.Input.Path == w.Outputs[i].Input.Path {
				w.Outputs[i].Input = o.Input
			}
		}
	}
	return lockfile.Diff(old, &w)
}

// staleReasons says why the job recorded by old is not up to date (nil:
// it is). The input and the outputs are compared through the stat cache.
func staleReasons(dir string, old, want *lockfile.Lock, cache *lockfile.StatCache) []string {
	if d := headerDiff(old, want); d != nil {
		return d
	}
	var reasons []string
	inputs := map[string]lockfile.File{}
	for _, o := range old.Outputs {
		in, ok := inputs[o.Input.Path]
		if !ok {
			var err error
			in, _, err = cache.Digest(lockfile.Abs(dir, o.Input.Path))
			if err != nil {
				reasons = append(reasons, fmt.Sprintf("input %s: %v", o.Input.Path, err))
				break
			}
			inputs[o.Input.Path] = in
		}
		if in.Size != o.Input.Size || in.SHA256 != o.Input.SHA256 {
			reasons = append(reasons, fmt.Sprintf("input %s changed", o.Input.Path))
			break
		}
	}
	if reasons != nil {
		return reasons
	}
	for _, o := range old.Outputs {
		f, _, err := cache.Digest(lockfile.Abs(dir, o.File.Path))
		switch {
		case os.IsNotExist(err):
			reasons = append(reasons, fmt.Sprintf("output %s is missing", o.File.Path))
		case err != nil:
			reasons = append(reasons, fmt.Sprintf("output %s: %v", o.File.Path, err))
		case f.Size != o.File.Size || f.SHA256 != o.File.SHA256:
			reasons = append(reasons, fmt.Sprintf("output %s differs from the lock (edited or replaced)", o.File.Path))
		}
	}
	return reasons
}

// newLock is want with the digests of the input and of what was written.
func newLock(dir string, want *lockfile.Lock, in lockfile.File, outs []*pipeline.OutputReport) *lockfile.Lock {
	l := *want
	l.Outputs = append([]lockfile.Output(nil), want.Outputs...)
	for i := range l.Outputs {
		l.Outputs[i].Input = lockfile.File{Path: l.Outputs[i].Input.Path, Size: in.Size, SHA256: in.SHA256}
		for _, o := range outs {
			if lockfile.Rel(dir, o.Path) == l.Outputs[i].File.Path {
				l.Outputs[i].File.Size, l.Outputs[i].File.SHA256 = o.Bytes, o.SHA256
			}
		}
	}
	return &l
}

// fillFrom is want with the digests and the tool of old, so that Diff
// shows only what a job file decides.
func fillFrom(old, want *lockfile.Lock) *lockfile.Lock {
	w := withTool(want, old.Tool)
	for i := range w.Outputs {
		if o := old.Output(w.Outputs[i].File.Path); o != nil {
			w.Outputs[i].File = o.File
			w.Outputs[i].Input.Size, w.Outputs[i].Input.SHA256 = o.Input.Size, o.Input.SHA256
		}
	}
	return w
}

func withTool(l *lockfile.Lock, t lockfile.Tool) *lockfile.Lock {
	c := *l
	c.Tool = t
	c.Outputs = append([]lockfile.Output(nil), l.Outputs...)
	return &c
}

// compareFile reads a file in full and compares it with the lock's entry.
func compareFile(path string, want lockfile.File) (bool, string) {
	f, err := lockfile.SHA256(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, "missing"
	case err != nil:
		return false, err.Error()
	case f.Size != want.Size || f.SHA256 != want.SHA256:
		return false, fmt.Sprintf("%d bytes sha256:%s, the lock %d bytes sha256:%s", f.Size, f.SHA256, want.Size, want.SHA256)
	}
	return true, ""
}

func joinLines(s []string) string { return strings.Join(s, "\n") }
