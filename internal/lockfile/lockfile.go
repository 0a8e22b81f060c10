// Package lockfile reads and writes qpipe lock files (JOB.lock next to
// JOB.yaml): what one successful `qpipe run` of a job file produced, from
// which job file, input and qpipe, so that a later run can tell whether the
// job is up to date and `qpipe run --check` can prove that the outputs
// reproduce.
//
// The format is line-oriented text, sorted, with no timestamps or
// machine-specific data, so that two runs of the same job give the same
// bytes and a change shows as a small diff:
//
//	# qpipe lock file: written by `qpipe run`, checked by `qpipe run --check` (README: Lock files)
//	lock 1
//	qpipe dev
//	build sha256:5d1c…
//	go go1.26.8 linux/amd64
//	job release.yaml sha256:9f86…
//	options strict-reference=false
//
//	output ../out/tiny_q8.tflite
//	  recipe name=dynamic_int8 suffix=q8 default=dynamic_int8
//	  input ../models/tiny.tflite size=6291456 sha256:2c26…
//	  file size=1712344 sha256:fcde…
//
// Paths are relative to the folder of the lock file, with '/' separators,
// and quoted as Go strings when they hold a space, a quote, a '#' or a
// character outside printable ASCII. Outputs are sorted by path. Blank lines
// and lines starting with '#' are ignored. Sizes are decimal byte counts;
// digests are lower-case hex sha256 with a "sha256:" prefix.
//
// The package also keeps the stat cache that lets a scheduled run decide
// that a 28 GB input is unchanged without reading it (see StatCache).
package lockfile

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/qpipe/qpipe/internal/atomicfile"
)

// FormatVersion is the `lock N` line this package writes and reads.
const FormatVersion = 1

// MaxSize bounds the lock files Parse accepts.
const MaxSize = 4 << 20

// Lock is one lock file.
type Lock struct {
	// Tool identifies the qpipe that wrote the outputs.
	Tool Tool
	// Job is the job file: its path (relative to the lock's folder) and
	// sha256. Its Size is not recorded (0).
	Job File
	// Options are the command-line settings that change output bytes,
	// as "key=value" words (e.g. strict-reference=false).
	Options string
	// Outputs, sorted by File.Path.
	Outputs []Output
}

// Tool is the qpipe that produced a lock.
type Tool struct {
	Version  string // `qpipe version`'s version: v1.2.3, or dev
	Build    string // "rev:<vcs revision>" of a clean release build, else "sha256:<digest of the executable>"
	Platform string // Go version, GOOS/GOARCH: "go1.26.8 linux/amd64"
}

// File is a file's path, size and content digest.
type File struct {
	Path   string // relative to the lock's folder, '/'-separated
	Size   int64
	SHA256 string // lower-case hex, without the "sha256:" prefix
}

// Output is one model a job wrote.
type Output struct {
	// Recipe is the resolved recipe in canonical form (one line of
	// space-separated key=value words, no '#').
	Recipe string
	Input  File
	File   File
}

// PathFor returns the lock file of a job file: JOB.lock next to JOB.yaml.
func PathFor(jobPath string) string {
	return strings.TrimSuffix(jobPath, filepath.Ext(jobPath)) + ".lock"
}

// Rel returns path relative to the lock's folder dir, '/'-separated; a path
// that cannot be made relative (another volume) stays absolute.
func Rel(dir, path string) string {
	ad, err1 := filepath.Abs(dir)
	ap, err2 := filepath.Abs(path)
	if err1 == nil && err2 == nil {
		if r, err := filepath.Rel(ad, ap); err == nil {
			return filepath.ToSlash(r)
		}
	}
	return filepath.ToSlash(path)
}

// Abs resolves a lock path against the lock's folder dir.
func Abs(dir, rel string) string {
	p := filepath.FromSlash(rel)
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// Sort orders the outputs by path.
func (l *Lock) Sort() {
	slices.SortFunc(l.Outputs, func(a, b Output) int { return strings.Compare(a.File.Path, b.File.Path) })
}

// Output returns the output recorded for path, or nil.
func (l *Lock) Output(path string) *Output {
	for i := range l.Outputs {
		if l.Outputs[i].File.Path == path {
			return &l.Outputs[i]
		}
	}
	return nil
}

const header = "# qpipe lock file: written by `qpipe run`, checked by `qpipe run --check` (README: Lock files)\n"

// Format writes the lock in its canonical text form. It sorts the outputs
// first. Two equal locks give the same bytes.
func (l *Lock) Format() []byte {
	l.Sort()
	var b bytes.Buffer
	b.WriteString(header)
	fmt.Fprintf(&b, "lock %d\n", FormatVersion)
	fmt.Fprintf(&b, "qpipe %s\n", word(l.Tool.Version))
	fmt.Fprintf(&b, "build %s\n", word(l.Tool.Build))
	fmt.Fprintf(&b, "go %s\n", oneLine(l.Tool.Platform))
	fmt.Fprintf(&b, "job %s sha256:%s\n", quotePath(l.Job.Path), l.Job.SHA256)
	fmt.Fprintf(&b, "options %s\n", oneLine(l.Options))
	for _, o := range l.Outputs {
		fmt.Fprintf(&b, "\noutput %s\n", quotePath(o.File.Path))
		fmt.Fprintf(&b, "  recipe %s\n", oneLine(o.Recipe))
		fmt.Fprintf(&b, "  input %s size=%d sha256:%s\n", quotePath(o.Input.Path), o.Input.Size, o.Input.SHA256)
		fmt.Fprintf(&b, "  file size=%d sha256:%s\n", o.File.Size, o.File.SHA256)
	}
	return b.Bytes()
}

// word keeps a one-word field one word (an empty one becomes "-").
func word(s string) string {
	s = strings.Join(strings.Fields(oneLine(s)), "_")
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps a free-text field on its line and out of comments.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(strings.Map(func(r rune) rune {
		if r == '#' || r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)), " ")
	if s == "" {
		return "-"
	}
	return s
}

// quotePath writes a path bare when it is plain, else as a Go string.
func quotePath(p string) string {
	if p == "" {
		return `""`
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '#' || c == '\\' || c == '=' {
			return strconv.Quote(p)
		}
	}
	return p
}

// ParseError names the lock file and line of a problem.
type ParseError struct {
	File string
	Line int
	Msg  string
}

func (e *ParseError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// Read reads and parses a lock file. A missing file gives an error for
// which errors.Is(err, fs.ErrNotExist) holds.
func Read(path string) (*Lock, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > MaxSize {
		return nil, &ParseError{File: path, Msg: fmt.Sprintf("larger than %d bytes; not a qpipe lock file", MaxSize)}
	}
	data := make([]byte, fi.Size())
	if _, err := f.ReadAt(data, 0); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return Parse(path, data)
}

// Parse decodes a lock file strictly: every line must be one this package
// writes, in its place; name labels errors.
func Parse(name string, data []byte) (*Lock, error) {
	if len(data) > MaxSize {
		return nil, &ParseError{File: name, Msg: fmt.Sprintf("larger than %d bytes; not a qpipe lock file", MaxSize)}
	}
	p := &parser{name: name}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), MaxSize)
	l := &Lock{}
	seen := map[string]bool{}
	var cur *Output
	var curFields map[string]bool
	finish := func() error {
		if cur == nil {
			return nil
		}
		for _, k := range []string{"recipe", "input", "file"} {
			if !curFields[k] {
				return p.errf("output %s has no %s line", cur.File.Path, k)
			}
		}
		if l.Output(cur.File.Path) != nil {
			return p.errf("output %s is listed twice", cur.File.Path)
		}
		l.Outputs = append(l.Outputs, *cur)
		cur = nil
		return nil
	}
	for sc.Scan() {
		p.line++
		line := sc.Text()
		if t := strings.TrimSpace(line); t == "" || t[0] == '#' {
			continue
		}
		indented := line[0] == ' '
		key, rest, _ := strings.Cut(strings.TrimLeft(line, " "), " ")
		if indented {
			if cur == nil {
				return nil, p.errf("indented %q line outside an output block", key)
			}
			if curFields[key] {
				return nil, p.errf("a second %s line in output %s", key, cur.File.Path)
			}
			curFields[key] = true
			var err error
			switch key {
			case "recipe":
				cur.Recipe, err = p.text(rest)
			case "input":
				cur.Input, err = p.file(rest, true)
			case "file":
				var f File
				f, err = p.file(rest, false)
				f.Path = cur.File.Path
				cur.File = f
			default:
				err = p.errf("unknown line %q in an output block (want recipe, input, file)", key)
			}
			if err != nil {
				return nil, err
			}
			continue
		}
		if err := finish(); err != nil {
			return nil, err
		}
		if key != "output" {
			if seen[key] {
				return nil, p.errf("a second %s line", key)
			}
			if len(l.Outputs) > 0 {
				return nil, p.errf("%s line after the outputs; the header comes first", key)
			}
			seen[key] = true
		}
		var err error
		switch key {
		case "lock":
			if rest != strconv.Itoa(FormatVersion) {
				return nil, p.errf("lock format %q; this qpipe reads format %d (rewrite the lock with `qpipe run --force`)", rest, FormatVersion)
			}
		case "qpipe":
			l.Tool.Version, err = p.word(rest)
		case "build":
			l.Tool.Build, err = p.word(rest)
		case "go":
			l.Tool.Platform, err = p.text(rest)
		case "job":
			l.Job, err = p.file(rest, false)
			if err == nil && l.Job.Size != 0 {
				err = p.errf("job line has a size; it records only the path and sha256")
			}
		case "options":
			l.Options, err = p.text(rest)
		case "output":
			if !seen["lock"] {
				return nil, p.errf("output before the `lock %d` line", FormatVersion)
			}
			var path string
			path, err = p.path(rest, true)
			cur, curFields = &Output{File: File{Path: path}}, map[string]bool{}
		default:
			err = p.errf("unknown line %q (want lock, qpipe, build, go, job, options, output)", key)
		}
		if err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, p.errf("%v", err)
	}
	if err := finish(); err != nil {
		return nil, err
	}
	p.line = 0
	for _, k := range []string{"lock", "qpipe", "build", "go", "job", "options"} {
		if !seen[k] {
			return nil, p.errf("no %s line; not a qpipe lock file (rewrite it with `qpipe run --force`)", k)
		}
	}
	for i := 1; i < len(l.Outputs); i++ {
		if l.Outputs[i-1].File.Path >= l.Outputs[i].File.Path {
			return nil, p.errf("outputs are not sorted by path (%s before %s)", l.Outputs[i-1].File.Path, l.Outputs[i].File.Path)
		}
	}
	return l, nil
}

type parser struct {
	name string
	line int
}

func (p *parser) errf(format string, a ...any) error {
	return &ParseError{File: p.name, Line: p.line, Msg: fmt.Sprintf(format, a...)}
}

func (p *parser) word(s string) (string, error) {
	if s == "" || s != word(s) {
		return "", p.errf("want one word, got %q", s)
	}
	return s, nil
}

func (p *parser) text(s string) (string, error) {
	if s == "" || s != oneLine(s) {
		return "", p.errf("malformed value %q", s)
	}
	return s, nil
}

// path reads a bare or quoted path; whole says it must be all of s.
func (p *parser) path(s string, whole bool) (string, error) {
	path, _, err := p.pathPrefix(s)
	if err != nil {
		return "", err
	}
	if whole && quotePath(path) != s {
		return "", p.errf("malformed path %q", s)
	}
	return path, nil
}

func (p *parser) pathPrefix(s string) (path, rest string, err error) {
	if strings.HasPrefix(s, `"`) {
		q, err := strconv.QuotedPrefix(s)
		if err != nil {
			return "", "", p.errf("malformed quoted path %s", s)
		}
		path, _ = strconv.Unquote(q)
		rest = s[len(q):]
	} else {
		path = s
		if i := strings.IndexByte(s, ' '); i >= 0 {
			path, rest = s[:i], s[i:]
		}
	}
	if path == "" {
		return "", "", p.errf("empty path")
	}
	if quotePath(path) != s[:len(s)-len(rest)] {
		return "", "", p.errf("path %q is not written canonically", s[:len(s)-len(rest)])
	}
	return path, rest, nil
}

// file reads "[PATH ]size=N sha256:HEX" (job: "PATH sha256:HEX").
func (p *parser) file(s string, withPath bool) (File, error) {
	var f File
	rest := " " + s
	if withPath || !strings.HasPrefix(s, "size=") {
		path, r, err := p.pathPrefix(s)
		if err != nil {
			return f, err
		}
		f.Path, rest = path, r
	}
	fields := strings.Split(strings.TrimPrefix(rest, " "), " ")
	if !strings.HasPrefix(rest, " ") || len(fields) == 0 {
		return f, p.errf("malformed file entry %q", s)
	}
	if len(fields) == 2 {
		n, ok := strings.CutPrefix(fields[0], "size=")
		v, err := strconv.ParseInt(n, 10, 64)
		if !ok || err != nil || v < 0 || strconv.FormatInt(v, 10) != n {
			return f, p.errf("malformed size %q", fields[0])
		}
		f.Size = v
		fields = fields[1:]
	}
	if len(fields) != 1 {
		return f, p.errf("malformed file entry %q (want size=N sha256:HEX)", s)
	}
	h, ok := strings.CutPrefix(fields[0], "sha256:")
	if !ok || !isHexDigest(h) {
		return f, p.errf("malformed digest %q (want sha256: and 64 lower-case hex digits)", fields[0])
	}
	f.SHA256 = h
	return f, nil
}

func isHexDigest(h string) bool {
	if len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// WriteFile writes the lock atomically: a temporary file in the same
// folder, renamed over path when complete.
func (l *Lock) WriteFile(path string) error {
	return atomicfile.WriteFile(path, l.Format(), 0o644, false)
}
