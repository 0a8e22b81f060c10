// Command fbfix rewrites the Go code that flatc 2.0.8 generates from the TFLite
// schema so that the object API is faithful and safe on untrusted input:
//
//   - UnPack keeps absent vectors nil (flatc makes them empty, which the runtime
//     reads differently: see FORMAT.md §9) and present empty ones empty.
//   - UnPack copies byte vectors instead of aliasing the input (the input may be
//     an mmap that is unmapped later).
//   - Every allocation made while unpacking is charged to a budget (see
//     budget.go), so a hostile file cannot make the decoder allocate more than
//     a small multiple of its own size.
//   - Pack leaves an empty string absent instead of writing "" (absent names
//     are common in real files; present empty ones are not).
//   - The package is renamed to fb.
//
// Usage: fbfix SRC_DIR DST_DIR
package main

import (
	"fmt"
	"go/format"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

var (
	lengthAccessor = regexp.MustCompile(`func \(rcv \*(\w+)\) (\w+)Length\(\) int \{\n\to := flatbuffers\.UOffsetT\(rcv\._tab\.Offset\((\d+)\)\)`)
	makeVector     = regexp.MustCompile(`(?m)^\t(\w+)Length := rcv\.(\w+)Length\(\)\n\tt\.(\w+) = make\((\[\][^,]+), (\w+)Length\)$`)
	byteVector     = regexp.MustCompile(`(?m)^\tt\.(\w+) = rcv\.(\w+)Bytes\(\)$`)
	stringField    = regexp.MustCompile(`(?m)^\tt\.(\w+) = string\(rcv\.(\w+)\(\)\)$`)
	tableAlloc     = regexp.MustCompile(`(?m)^\tt := &(\w+)T\{\}\n\trcv\.UnPackTo\(t\)$`)
	packString     = regexp.MustCompile(`(?m)^\t(\w+)Offset := builder\.CreateString\(t\.(\w+)\)$`)
	packageClause  = regexp.MustCompile(`(?m)^package tflite$`)
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: fbfix SRC_DIR DST_DIR")
		os.Exit(2)
	}
	src, dst := os.Args[1], os.Args[2]
	files, err := filepath.Glob(filepath.Join(src, "*.go"))
	if err != nil || len(files) == 0 {
		fmt.Fprintf(os.Stderr, "fbfix: no Go files in %s\n", src)
		os.Exit(1)
	}
	sort.Strings(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			fail(err)
		}
		out, err := rewrite(string(b))
		if err != nil {
			fail(fmt.Errorf("%s: %w", f, err))
		}
		formatted, err := format.Source([]byte(out))
		if err != nil {
			fail(fmt.Errorf("%s: gofmt: %w", f, err))
		}
		if err := os.WriteFile(filepath.Join(dst, filepath.Base(f)), formatted, 0o644); err != nil {
			fail(err)
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "fbfix:", err)
	os.Exit(1)
}

func rewrite(s string) (string, error) {
	s = packageClause.ReplaceAllString(s, "package fb")
	slots := map[string]string{} // "Type.Field" -> vtable offset
	for _, m := range lengthAccessor.FindAllStringSubmatch(s, -1) {
		slots[m[1]+"."+m[2]] = m[3]
	}
	var missing []string
	s = replaceUnPack(s, func(typ, body string) string {
		body = makeVector.ReplaceAllStringFunc(body, func(m string) string {
			g := makeVector.FindStringSubmatch(m)
			slot, ok := slots[typ+"."+g[2]]
			if !ok {
				missing = append(missing, typ+"."+g[2])
				return m
			}
			return fmt.Sprintf("\t%sLength := rcv.%sLength()\n\tif %sLength > 0 || rcv._tab.Offset(%s) != 0 {\n\t\tt.%s = make(%s, unpackLen(%sLength))\n\t}",
				g[1], g[2], g[1], slot, g[3], g[4], g[5])
		})
		body = byteVector.ReplaceAllString(body, "\tt.${1} = unpackBytes(rcv.${2}Bytes())")
		body = stringField.ReplaceAllString(body, "\tt.${1} = unpackString(rcv.${2}())")
		return body
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("no length accessor for %v", missing)
	}
	s = tableAlloc.ReplaceAllString(s, "\tunpackLen(tableCost)\n\tt := &${1}T{}\n\trcv.UnPackTo(t)")
	s = packString.ReplaceAllString(s, "\t${1}Offset := flatbuffers.UOffsetT(0)\n\tif t.${2} != \"\" {\n\t\t${1}Offset = builder.CreateString(t.${2})\n\t}")
	return s, nil
}

// replaceUnPack applies f to the body of every UnPackTo method, passing the
// receiver type name.
func replaceUnPack(s string, f func(typ, body string) string) string {
	re := regexp.MustCompile(`(?s)func \(rcv \*(\w+)\) UnPackTo\(t \*\w+T\) \{\n(.*?)\n\}\n`)
	return re.ReplaceAllStringFunc(s, func(m string) string {
		g := re.FindStringSubmatch(m)
		return strings.Replace(m, g[2], f(g[1], g[2]), 1)
	})
}
