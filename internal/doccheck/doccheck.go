// Package doccheck finds citations of documents that do not exist: a
// comment that says `FORMAT.md §5`, `docs/METHODS.md` or `README: Lock files`
// must name a file of the repository, and the section or heading it names
// must be a heading of that file. Its test runs Check on the repository, so
// `make test` (and CI) fails on a dangling citation, naming file and line.
//
// What is scanned: the comments of every .go file, and the whole text of
// Markdown files, Makefiles and .ci/run. What counts as a citation:
//
//   - A file name or path ending in .md (docs/SEMANTICS.md), optionally
//     followed by sections: `SEMANTICS.md §6.4`, `SEMANTICS.md §6.1, §7`,
//     `SEMANTICS.md §5 and §7`, `[SEMANTICS.md](SEMANTICS.md) §2`,
//     `[text](SEMANTICS.md) §2` (Markdown links).
//     The file is looked up next to the citing file, then at the repository
//     root, then in docs/. A section §n.m exists when the file has a heading
//     whose title starts with that number (`## 6. …`, `### 6.4 …`).
//     Lower-case names are citations only with a folder before them, and a
//     path right after a '/' (a URL, an upstream repository) is not ours.
//   - A bare §n: in a Markdown file it is a section of that file; elsewhere it
//     names no document and is reported.
//   - `README: Lock files` or `README, Lock files`: README.md must have a
//     heading whose title starts the cited text.
package doccheck

import (
	"bufio"
	"bytes"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Problem is one citation that points nowhere.
type Problem struct {
	File string // slash-separated, relative to the root
	Line int
	Msg  string
}

func (p Problem) String() string { return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg) }

// skipDirs are folders never scanned: generated bindings, vendored
// JavaScript, test data and caches.
var skipDirs = map[string]bool{
	".git": true, "node_modules": true, "testdata": true, ".cache": true, "vendor": true, "out": true, "bin": true,
}

var (
	// A document path and the sections that follow it.
	docRe = regexp.MustCompile(`((?:[\w.-]+/)*[\w.-]+\.md)\b(?:\]\([^)\s]*\)|\))?((?:\s*(?:,|and)?\s*§\d+(?:\.\d+)*)*)`)
	secRe = regexp.MustCompile(`§(\d+(?:\.\d+)*)`)
	// "README" then a colon or comma and a heading (not README.md, which
	// docRe takes).
	readmeRe = regexp.MustCompile(`\bREADME[:,] +(\S[^\n]*)`)
	// A numbered Markdown heading, and any heading's title.
	headingRe = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*$`)
	numberRe  = regexp.MustCompile(`^(\d+(?:\.\d+)*)\.?(?:\s|$)`)
	upperName = regexp.MustCompile(`^[A-Z][A-Z0-9_-]*\.md$`)
)

// Check scans the tree under root and returns every dangling citation,
// sorted by file and line.
func Check(root string) ([]Problem, error) {
	c := &checker{root: root, headings: map[string][]string{}}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if path != root && (skipDirs[name] || (strings.HasPrefix(name, ".") && name != ".ci")) {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case strings.HasSuffix(name, ".go"):
			return c.goFile(rel)
		case strings.HasSuffix(name, ".md"):
			return c.textFile(rel, "", true)
		case name == "Makefile" || rel == ".ci/run":
			return c.textFile(rel, "#", false)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(c.problems, func(i, j int) bool {
		a, b := c.problems[i], c.problems[j]
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Line < b.Line
	})
	return c.problems, nil
}

type checker struct {
	root     string
	headings map[string][]string // file (slash, relative) → heading titles; nil entry: no such file
	problems []Problem
}

// A text is a run of lines, each with its line number, with comment
// markers removed, scanned as one string so citations may wrap.
type text struct {
	file  string
	lines []int // line number of each line of s
	s     string
	md    bool
}

func (c *checker) goFile(rel string) error {
	src, err := os.ReadFile(filepath.Join(c.root, rel))
	if err != nil {
		return err
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, rel, src, parser.ParseComments|parser.SkipObjectResolution)
	if f == nil {
		return fmt.Errorf("%s: %v", rel, err)
	}
	for _, g := range f.Comments {
		var t text
		t.file = rel
		var b strings.Builder
		for _, cm := range g.List {
			line := fset.Position(cm.Slash).Line
			body := strings.TrimPrefix(strings.TrimPrefix(cm.Text, "//"), "/*")
			body = strings.TrimSuffix(body, "*/")
			for i, l := range strings.Split(body, "\n") {
				t.lines = append(t.lines, line+i)
				b.WriteString(l)
				b.WriteByte('\n')
			}
		}
		t.s = b.String()
		c.scan(&t)
	}
	return nil
}

func (c *checker) textFile(rel, marker string, md bool) error {
	src, err := os.ReadFile(filepath.Join(c.root, rel))
	if err != nil {
		return err
	}
	t := text{file: rel, md: md}
	var b strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		if marker != "" {
			l = strings.TrimPrefix(strings.TrimSpace(l), marker)
		}
		t.lines = append(t.lines, n)
		b.WriteString(l)
		b.WriteByte('\n')
	}
	t.s = b.String()
	c.scan(&t)
	return sc.Err()
}

// lineOf is the file line of byte offset off of t.s.
func (t *text) lineOf(off int) int {
	return t.lines[strings.Count(t.s[:off], "\n")]
}

func (c *checker) report(t *text, off int, format string, args ...any) {
	c.problems = append(c.problems, Problem{File: t.file, Line: t.lineOf(off), Msg: fmt.Sprintf(format, args...)})
}

func (c *checker) scan(t *text) {
	covered := map[int]bool{} // offsets of § signs that belong to a document citation
	for _, m := range docRe.FindAllStringSubmatchIndex(t.s, -1) {
		path := t.s[m[2]:m[3]]
		if m[2] > 0 && t.s[m[2]-1] == '/' {
			continue // a URL or someone else's repository
		}
		base := path[strings.LastIndex(path, "/")+1:]
		if !strings.Contains(path, "/") && !upperName.MatchString(base) {
			continue
		}
		for _, s := range secRe.FindAllStringIndex(t.s[m[4]:m[5]], -1) {
			covered[m[4]+s[0]] = true
		}
		doc, ok := c.resolve(t.file, path)
		if !ok {
			c.report(t, m[2], "cites %s, which is not in the repository (looked next to the file, at the root and in docs/)", path)
			continue
		}
		for _, s := range secRe.FindAllStringSubmatch(t.s[m[4]:m[5]], -1) {
			if !c.hasSection(doc, s[1]) {
				c.report(t, m[2], "cites %s §%s, but %s has no heading numbered %s", path, s[1], doc, s[1])
			}
		}
	}
	for _, s := range secRe.FindAllStringSubmatchIndex(t.s, -1) {
		if covered[s[0]] {
			continue
		}
		sec := t.s[s[2]:s[3]]
		if !t.md {
			c.report(t, s[0], "cites §%s without naming the document", sec)
			continue
		}
		if !c.hasSection(t.file, sec) {
			c.report(t, s[0], "cites §%s, but %s has no heading numbered %s", sec, t.file, sec)
		}
	}
	for _, m := range readmeRe.FindAllStringSubmatchIndex(t.s, -1) {
		cited := t.s[m[2]:m[3]]
		titles, ok := c.titles("README.md")
		if !ok {
			c.report(t, m[0], "cites README, which is not in the repository")
			continue
		}
		found := false
		for _, h := range titles {
			if h != "" && strings.HasPrefix(cited, h) {
				found = true
				break
			}
		}
		if !found {
			c.report(t, m[0], "cites README: %q, but README.md has no heading that starts it", firstWords(cited, 4))
		}
	}
}

// resolve finds the cited file next to the citing one, at the root or in
// docs/, and returns its slash path relative to the root.
func (c *checker) resolve(from, path string) (string, bool) {
	for _, cand := range []string{filepath.ToSlash(filepath.Join(filepath.Dir(from), path)), filepath.ToSlash(filepath.Clean(path)), "docs/" + path} {
		if _, ok := c.titles(cand); ok {
			return cand, true
		}
	}
	return "", false
}

// titles returns the heading titles of a Markdown file, read once.
func (c *checker) titles(rel string) ([]string, bool) {
	if h, ok := c.headings[rel]; ok {
		return h, h != nil
	}
	src, err := os.ReadFile(filepath.Join(c.root, filepath.FromSlash(rel)))
	if err != nil {
		c.headings[rel] = nil
		return nil, false
	}
	h := []string{}
	inFence := false
	for _, l := range strings.Split(string(src), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			inFence = !inFence
			continue
		}
		if m := headingRe.FindStringSubmatch(l); m != nil && !inFence {
			h = append(h, m[1])
		}
	}
	c.headings[rel] = h
	return h, true
}

func (c *checker) hasSection(doc, sec string) bool {
	titles, _ := c.titles(doc)
	for _, h := range titles {
		if m := numberRe.FindStringSubmatch(h); m != nil && m[1] == sec {
			return true
		}
	}
	return false
}

func firstWords(s string, n int) string {
	f := strings.Fields(s)
	if len(f) > n {
		f = f[:n]
	}
	return strings.Join(f, " ")
}
