package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// The corpus is text every machine with Go has: the Go distribution's own
// documents ($GOROOT/doc) and a fixed-size, deterministic sample of its
// non-test, non-generated source files ($GOROOT/src/**/*.go outside
// testdata and vendor). Files are ordered by the FNV-1a hash of their
// path below $GOROOT (a shuffle that is the same on every machine and
// spreads the sample over the whole tree); a file whose hash is 0 mod
// heldoutMod is held out, the others are training text. Training text is
// taken in that order until trainBytes, held-out text until heldoutBytes;
// a file is taken whole or not at all. The same Go version gives the same
// bytes; the sha256 of both texts is in the training log.
const (
	trainBytes   = 6 << 20
	heldoutBytes = 192 << 10
	heldoutMod   = 16
	// maxFileBytes skips the few huge files (tables, long generated
	// sources that lack the "Code generated" line).
	maxFileBytes = 64 << 10
)

type corpusFile struct {
	rel  string
	hash uint64
}

func fnv64(s string) uint64 {
	h := uint64(0xcbf29ce484222325)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 0x100000001b3
	}
	return h
}

// buildCorpus writes train.txt and heldout.txt into dir and returns their
// descriptions (file counts, bytes, sha256).
func buildCorpus(goroot, dir string) (map[string]string, error) {
	var docs, srcs []corpusFile
	docDir := filepath.Join(goroot, "doc")
	ents, err := os.ReadDir(docDir)
	if err != nil {
		return nil, fmt.Errorf("corpus: %w (is GOROOT %s a Go distribution?)", err, goroot)
	}
	for _, e := range ents {
		n := e.Name()
		if e.Type().IsRegular() && (strings.HasSuffix(n, ".html") || strings.HasSuffix(n, ".md")) {
			docs = append(docs, corpusFile{rel: "doc/" + n})
		}
	}
	sort.Slice(docs, func(i, j int) bool { return docs[i].rel < docs[j].rel })
	src := filepath.Join(goroot, "src")
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); n == "testdata" || n == "vendor" {
				return filepath.SkipDir
			}
			return nil
		}
		n := d.Name()
		if !d.Type().IsRegular() || !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
			return nil
		}
		rel, err := filepath.Rel(goroot, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		srcs = append(srcs, corpusFile{rel: rel, hash: fnv64(rel)})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("corpus: %w", err)
	}
	sort.Slice(srcs, func(i, j int) bool {
		if srcs[i].hash != srcs[j].hash {
			return srcs[i].hash < srcs[j].hash
		}
		return srcs[i].rel < srcs[j].rel
	})
	var train, held bytes.Buffer
	var nTrain, nHeld int
	add := func(buf *bytes.Buffer, f corpusFile, limit int) (bool, error) {
		b, err := os.ReadFile(filepath.Join(goroot, filepath.FromSlash(f.rel)))
		if err != nil {
			return false, fmt.Errorf("corpus: %w", err)
		}
		if len(b) > maxFileBytes || bytes.Contains(b[:min(len(b), 1024)], []byte("Code generated")) {
			return false, nil
		}
		if buf.Len()+len(b) > limit {
			return false, nil
		}
		b = bytes.ReplaceAll(b, []byte("\r"), nil)
		buf.Write(b)
		if len(b) > 0 && b[len(b)-1] != '\n' {
			buf.WriteByte('\n')
		}
		return true, nil
	}
	for _, f := range docs {
		if ok, err := add(&train, f, trainBytes); err != nil {
			return nil, err
		} else if ok {
			nTrain++
		}
	}
	for _, f := range srcs {
		var ok bool
		if f.hash%heldoutMod == 0 {
			if ok, err = add(&held, f, heldoutBytes); ok {
				nHeld++
			}
		} else if ok, err = add(&train, f, trainBytes); ok {
			nTrain++
		}
		if err != nil {
			return nil, err
		}
		if train.Len() > trainBytes-1024 && held.Len() > heldoutBytes-1024 {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	info := map[string]string{}
	for _, x := range []struct {
		name string
		buf  *bytes.Buffer
		n    int
	}{{"train", &train, nTrain}, {"heldout", &held, nHeld}} {
		if err := os.WriteFile(filepath.Join(dir, x.name+".txt"), x.buf.Bytes(), 0o644); err != nil {
			return nil, err
		}
		sum := sha256.Sum256(x.buf.Bytes())
		info[x.name] = fmt.Sprintf("%d files, %d bytes, sha256 %s", x.n, x.buf.Len(), hex.EncodeToString(sum[:]))
	}
	return info, nil
}
