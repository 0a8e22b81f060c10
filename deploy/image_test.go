package deploy

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestImage builds the image with `make image` (podman) and checks what is
// in it: the static qpipe binary and the user files only, a non-root USER,
// qpipe as the entrypoint. CI installs podman from Debian (.ci/run); the
// test is skipped where podman is not installed. Building needs no network
// (FROM scratch, the static binary). Running the container is tried too,
// but sandboxes often refuse it (crun: setrlimit RLIMIT_NOFILE, cgroups):
// then only that step is left out, the image's binary is run directly on
// the host instead, and the refusal is logged. `make image` rebuilds bin/qpipe (with the test's VERSION) on the way.
func TestImage(t *testing.T) {
	podman, err := exec.LookPath("podman")
	if err != nil {
		t.Skip("podman is not installed: the container image is not built here (apt-get install podman to run this test)")
	}
	if testing.Short() {
		t.Skip("-short: the image build takes tens of seconds")
	}
	const version = "v0.0.0-imagetest"
	image := fmt.Sprintf("localhost/qpipe-test:%d", os.Getpid())
	make := exec.Command("make", "-C", "..", "image", "IMAGE="+image, "VERSION="+version, "CONTAINER="+podman)
	if out, err := make.CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command(podman, "rmi", "-f", image).Run() })

	// The image's configuration.
	out, err := exec.Command(podman, "image", "inspect", image).Output()
	if err != nil {
		t.Fatal(err)
	}
	var inspect []struct {
		Config struct {
			User       string
			Entrypoint []string
			Cmd        []string
			WorkingDir string
			Labels     map[string]string
		}
	}
	if err := json.Unmarshal(out, &inspect); err != nil || len(inspect) != 1 {
		t.Fatalf("podman image inspect: %v\n%s", err, out)
	}
	cfg := inspect[0].Config
	uid, gid := containerUser(t)
	if cfg.User != fmt.Sprintf("%d:%d", uid, gid) || uid == 0 {
		t.Errorf("USER %q, want the non-root %d:%d", cfg.User, uid, gid)
	}
	if !slices.Equal(cfg.Entrypoint, []string{"/qpipe"}) {
		t.Errorf("entrypoint %q, want [/qpipe]", cfg.Entrypoint)
	}
	if cfg.WorkingDir != "/work" {
		t.Errorf("working directory %q", cfg.WorkingDir)
	}
	if v := cfg.Labels["org.opencontainers.image.version"]; v != version {
		t.Errorf("version label %q, want %s", v, version)
	}

	// The files: podman save, then every layer.
	archive := filepath.Join(t.TempDir(), "image.tar")
	if out, err := exec.Command(podman, "save", "--format", "docker-archive", "-o", archive, image).CombinedOutput(); err != nil {
		t.Fatalf("podman save: %v\n%s", err, out)
	}
	files := imageFiles(t, archive)
	var names []string
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	if want := []string{"etc/group", "etc/passwd", "qpipe"}; !slices.Equal(names, want) {
		t.Errorf("the image holds %q, want only %q (no shell, no libraries)", names, want)
	}
	if !strings.Contains(string(files["etc/passwd"].data), fmt.Sprintf("qpipe:x:%d:%d:", uid, gid)) {
		t.Errorf("/etc/passwd does not name the user %d:%d:\n%s", uid, gid, files["etc/passwd"].data)
	}
	bin := files["qpipe"]
	if bin.mode&0o111 == 0 || bin.uid != 0 {
		t.Errorf("/qpipe: mode %o owner %d; want executable, owned by root (the user cannot replace it)", bin.mode, bin.uid)
	}
	f, err := elf.NewFile(bytes.NewReader(bin.data))
	if err != nil {
		t.Fatalf("/qpipe is not an ELF binary: %v", err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("/qpipe has a dynamic loader (PT_INTERP): not a static binary")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("/qpipe needs shared libraries %q", libs)
	}

	// The image's binary runs (on the host: it is static).
	exe := filepath.Join(t.TempDir(), "qpipe")
	if err := os.WriteFile(exe, bin.data, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(exe, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "qpipe "+version+" ") {
		t.Errorf("the image's /qpipe version: %v\n%s", err, out)
	}

	// The container itself, where the sandbox allows it.
	out, err = exec.Command(podman, "run", "--rm", "--network=none", image, "version").CombinedOutput()
	switch {
	case err != nil:
		t.Logf("podman run was refused here, so the container was not run (its binary was run above): %v\n%s", err, out)
	case !strings.HasPrefix(string(out), "qpipe "+version+" "):
		t.Errorf("podman run %s version: %s", image, out)
	}
}

type imageFile struct {
	data []byte
	mode int64
	uid  int
}

// imageFiles reads a docker-archive: manifest.json names the layers, each
// an (uncompressed) tar of files; later layers win.
func imageFiles(t *testing.T, archive string) map[string]imageFile {
	t.Helper()
	entries := map[string][]byte{}
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			entries[h.Name] = b
		}
	}
	var manifest []struct{ Layers []string }
	if err := json.Unmarshal(entries["manifest.json"], &manifest); err != nil || len(manifest) != 1 {
		t.Fatalf("manifest.json: %v", err)
	}
	files := map[string]imageFile{}
	for _, l := range manifest[0].Layers {
		lr := tar.NewReader(bytes.NewReader(entries[l]))
		for {
			h, err := lr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("layer %s: %v", l, err)
			}
			if h.Typeflag != tar.TypeReg {
				continue
			}
			b, _ := io.ReadAll(lr)
			files[strings.TrimPrefix(h.Name, "./")] = imageFile{data: b, mode: h.Mode, uid: h.Uid}
		}
	}
	return files
}
