package lockfile

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func digest(c byte) string { return strings.Repeat(string(c), 64) }

func sample() *Lock {
	return &Lock{
		Tool:    Tool{Version: "v1.2.3", Build: "rev:0123abc", Platform: "go1.26.8 linux/amd64"},
		Job:     File{Path: "release.yaml", SHA256: digest('a')},
		Options: "strict-reference=false",
		Outputs: []Output{
			{Recipe: "name=fp16 suffix=fp16 default=fp16", Input: File{Path: "../models/tiny.tflite", Size: 6291456, SHA256: digest('b')}, File: File{Path: "../out/tiny_fp16.tflite", Size: 3000000, SHA256: digest('c')}},
			{Recipe: "name=dynamic_int8 suffix=q8 default=dynamic_int8", Input: File{Path: "../models/tiny.tflite", Size: 6291456, SHA256: digest('b')}, File: File{Path: "../out/my model #1.tflite", Size: 1700000, SHA256: digest('d')}},
		},
	}
}

const sampleText = "# qpipe lock file: written by `qpipe run`, checked by `qpipe run --check` (README: Lock files)\n" +
	"lock 1\n" +
	"qpipe v1.2.3\n" +
	"build rev:0123abc\n" +
	"go go1.26.8 linux/amd64\n" +
	"job release.yaml sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n" +
	"options strict-reference=false\n" +
	"\n" +
	"output \"../out/my model #1.tflite\"\n" +
	"  recipe name=dynamic_int8 suffix=q8 default=dynamic_int8\n" +
	"  input ../models/tiny.tflite size=6291456 sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n" +
	"  file size=1700000 sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd\n" +
	"\n" +
	"output ../out/tiny_fp16.tflite\n" +
	"  recipe name=fp16 suffix=fp16 default=fp16\n" +
	"  input ../models/tiny.tflite size=6291456 sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n" +
	"  file size=3000000 sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc\n"

func TestFormatGolden(t *testing.T) {
	got := string(sample().Format())
	if got != sampleText {
		t.Fatalf("format:\n%s\nwant:\n%s", got, sampleText)
	}
	// The order the outputs were added in does not matter.
	l := sample()
	l.Outputs[0], l.Outputs[1] = l.Outputs[1], l.Outputs[0]
	if string(l.Format()) != sampleText {
		t.Fatal("format depends on the order of the outputs")
	}
}

func TestRoundTrip(t *testing.T) {
	l, err := Parse("x.lock", []byte(sampleText))
	if err != nil {
		t.Fatal(err)
	}
	want := sample()
	want.Sort()
	if !reflect.DeepEqual(l, want) {
		t.Fatalf("parsed %+v\nwant %+v", l, want)
	}
	if d := Diff(want, l); d != nil {
		t.Fatalf("diff of equal locks: %v", d)
	}
	// No outputs at all is a valid lock too.
	e := &Lock{Tool: Tool{Version: "dev", Build: "sha256:" + digest('e'), Platform: "go1.26.8 linux/amd64"}, Job: File{Path: "j.yaml", SHA256: digest('f')}, Options: "x=y"}
	back, err := Parse("e.lock", e.Format())
	if err != nil || !reflect.DeepEqual(back, e) {
		t.Fatalf("empty lock round trip: %+v, %v", back, err)
	}
}

func TestParseErrors(t *testing.T) {
	lines := strings.SplitAfter(sampleText, "\n")
	replace := func(i int, s string) string {
		c := append([]string(nil), lines...)
		c[i] = s
		return strings.Join(c, "")
	}
	for _, tc := range []struct {
		name, text, want string
	}{
		{"empty", "", "x.lock: no lock line"},
		{"future format", replace(1, "lock 2\n"), "x.lock:2: lock format \"2\""},
		{"unknown key", replace(4, "golang 1\n"), "x.lock:5: unknown line \"golang\""},
		{"duplicate header", replace(5, "qpipe v2\n"), "x.lock:6: a second qpipe line"},
		{"bad digest", replace(5, "job release.yaml sha256:abc\n"), "x.lock:6: malformed digest"},
		{"upper-case digest", replace(5, "job release.yaml sha256:"+strings.Repeat("A", 64)+"\n"), "x.lock:6: malformed digest"},
		{"job with size", replace(5, "job release.yaml size=3 sha256:"+digest('a')+"\n"), "x.lock:6: job line has a size"},
		{"negative size", replace(16, "  file size=-1 sha256:"+digest('c')+"\n"), "x.lock:17: malformed size"},
		{"size with sign", replace(16, "  file size=+1 sha256:"+digest('c')+"\n"), "x.lock:17: malformed size"},
		{"missing file line", replace(16, "\n"), "output ../out/tiny_fp16.tflite has no file line"},
		{"duplicate field", replace(15, "  recipe a=b\n"), "x.lock:16: a second recipe line"},
		{"indented outside", replace(6, "  recipe a=b\n"), "x.lock:7: indented \"recipe\" line outside an output block"},
		{"unsorted", replace(13, "output ../out/a.tflite\n"), "outputs are not sorted"},
		{"bad quote", replace(8, "output \"../out/my\n"), "x.lock:9: malformed quoted path"},
		{"needless quote", replace(12, "output \"../out/tiny_fp16.tflite\"\n"), "x.lock:13: path \"\\\"../out/tiny_fp16.tflite\\\"\" is not written canonically"},
		{"unquoted space", replace(8, "output ../out/my model.tflite\n"), "x.lock:9: malformed path"},
		{"header after outputs", sampleText + "options a=b\n", "x.lock:18: a second options line"},
		{"duplicate output", sampleText + "\n" + strings.Join(lines[12:17], ""), "listed twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("x.lock", []byte(tc.text))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestDiff(t *testing.T) {
	a := sample()
	b := sample()
	b.Tool.Version = "v1.2.4"
	b.Job.SHA256 = digest('9')
	b.Outputs[0].File.SHA256 = digest('8')
	b.Outputs[1].Input.Size = 1
	b.Outputs = append(b.Outputs, Output{Recipe: "r", File: File{Path: "new.tflite"}})
	a.Outputs = append(a.Outputs, Output{Recipe: "r", File: File{Path: "old.tflite"}})
	got := strings.Join(Diff(a, b), "\n")
	for _, want := range []string{
		"qpipe version v1.2.4, was v1.2.3",
		"job file release.yaml changed",
		"output ../out/tiny_fp16.tflite: ../out/tiny_fp16.tflite has sha256:888888888888…, the lock sha256:cccccccccccc…",
		"output ../out/my model #1.tflite: input ../models/tiny.tflite has 1 bytes, the lock 6291456",
		"output new.tflite: new",
		"output old.tflite: no longer written",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("diff lacks %q:\n%s", want, got)
		}
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "j.lock")
	if err := sample().WriteFile(p); err != nil {
		t.Fatal(err)
	}
	l, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(l.Format(), []byte(sampleText)) {
		t.Fatal("read back differs")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("left %d files, want only the lock", len(ents))
	}
	if _, err := Read(filepath.Join(dir, "missing.lock")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing lock: %v", err)
	}
	// An unwritable folder: an error naming the lock, no stray file.
	if err := sample().WriteFile(filepath.Join(dir, "no", "such", "j.lock")); err == nil || !strings.Contains(err.Error(), "j.lock") {
		t.Fatalf("write into a missing folder: %v", err)
	}
}

func TestPaths(t *testing.T) {
	if got := PathFor("jobs/release.yaml"); got != "jobs/release.lock" {
		t.Fatal(got)
	}
	if got := PathFor("jobs/release"); got != "jobs/release.lock" {
		t.Fatal(got)
	}
	if got := Rel("jobs", "out/x.tflite"); got != "../out/x.tflite" {
		t.Fatal(got)
	}
	if got := Abs("jobs", "../out/x.tflite"); got != filepath.FromSlash("out/x.tflite") {
		t.Fatal(got)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(sampleText))
	f.Add([]byte("lock 1\nqpipe a\nbuild b\ngo c\njob j sha256:" + digest('0') + "\noptions -\n"))
	f.Add([]byte("output \"\\x00\"\n  file size=1 sha256:" + digest('1') + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := Parse("fuzz.lock", data)
		if err != nil {
			return
		}
		// What parses formats canonically, and that form parses to the same lock.
		text := l.Format()
		back, err := Parse("fuzz.lock", text)
		if err != nil {
			t.Fatalf("formatted lock does not parse: %v\n%s", err, text)
		}
		if !reflect.DeepEqual(back, l) {
			t.Fatalf("round trip changed the lock:\n%+v\n%+v", l, back)
		}
		if !bytes.Equal(back.Format(), text) {
			t.Fatal("format is not stable")
		}
	})
}
