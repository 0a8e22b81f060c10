package cache

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestDir(t *testing.T) {
	t.Setenv(EnvVar, "/some/where")
	if got := Dir(); got != "/some/where" {
		t.Fatalf("Dir() = %q", got)
	}
	t.Setenv(EnvVar, Off)
	if got := Dir(); got != "" {
		t.Fatalf("with %s=off Dir() = %q, want \"\"", EnvVar, got)
	}
	t.Setenv(EnvVar, "")
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	if got := Dir(); got != filepath.Join("/xdg", "qpipe") {
		t.Fatalf("Dir() = %q, want /xdg/qpipe", got)
	}
}

func TestFile(t *testing.T) {
	if File("", "calibration", "k", 1, "gob") != "" {
		t.Fatal("caching off must give no file")
	}
	a := File("/c", "calibration", "model=1", 1, "gob")
	b := File("/c", "calibration", "model=2", 1, "gob")
	c := File("/c", "calibration", "model=1", 2, "gob")
	if a == b || a == c || !strings.HasPrefix(a, "/c/calibration-v1-") || !strings.HasSuffix(a, ".gob") {
		t.Fatalf("names %q %q %q", a, b, c)
	}
	if a != File("/c", "calibration", "model=1", 1, "gob") {
		t.Fatal("not deterministic")
	}
}

func TestWriteOff(t *testing.T) {
	if err := Write("", []byte("x")); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f := File(dir, "sensitivity", "k", 1, "json")
	if err := Write(f, []byte("{}")); err != nil {
		t.Fatal(err)
	}
}
