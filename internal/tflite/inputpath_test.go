package tflite

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// useInputPath makes this process read large sections by path until the
// test ends (the probe is then never run).
func useInputPath(t *testing.T, path string) {
	input.once.Do(func() {})
	old := input.choice.Load()
	input.choice.Store(&[2]string{path, "test"})
	t.Cleanup(func() { input.choice.Store(old) })
}

// TestPiecesBothInputPaths: pieces of a large weight of a mapped file are
// the same bytes whether handed out from the mapping or read by pread, in
// piece sizes that cross many release points; a file cut short and a
// closed model give errors in both (through the mapping a read past the
// cut would raise SIGBUS, so the pieces check first).
func TestPiecesBothInputPaths(t *testing.T) {
	for _, path := range []string{InputMapped, InputPread} {
		t.Run(path, func(t *testing.T) {
			useInputPath(t, path)
			file, want := streamModel(t, t.TempDir())
			m, err := Open(file)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			big := weightContents(m)[0]
			for _, size := range []int{4096 + 4, 1 << 20, 3 << 20} {
				if got := readAllPieces(t, big, size); !bytes.Equal(got, want[0]) {
					t.Errorf("pieces of %d: bytes differ", size)
				}
			}
			// Buffered pieces: the same bytes, never the mapping itself.
			b, err := ReadPiecesBuffered(big, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			var got []byte
			mapping := big.(*Section).Bytes()
			for {
				piece, err := b.Next()
				if err != nil {
					break
				}
				if &piece[0] == &mapping[len(got)] {
					t.Fatalf("buffered piece at %d is the mapping", len(got))
				}
				got = append(got, piece...)
			}
			b.Close()
			if !bytes.Equal(got, want[0]) {
				t.Error("buffered pieces: bytes differ")
			}
			p, err := ReadPieces(big, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if got := p.mapped != nil; got != (path == InputMapped) {
				t.Errorf("read through the mapping: %v", got)
			}
			if _, err := p.Next(); err != nil {
				t.Fatal(err)
			}
			s := big.(*Section)
			if err := os.Truncate(file, s.Offset()+(2<<20)); err != nil {
				t.Fatal(err)
			}
			if _, err := p.Next(); err != nil { // the second MiB is still there
				t.Fatal(err)
			}
			if _, err := p.Next(); err == nil || !strings.Contains(err.Error(), file) {
				t.Errorf("third piece of a file cut after two: %v, want an error naming %s", err, file)
			}
		})
	}
}

// TestInputProbe: the probe on a real file chooses one of the two paths
// and says what it measured.
func TestInputProbe(t *testing.T) {
	file, _ := streamModel(t, t.TempDir())
	m, err := Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	path, why := probeInput(weightContents(m)[0].(*Section))
	if path != InputMapped && path != InputPread || !strings.Contains(why, "GB/s") {
		t.Errorf("probe: %q, %q", path, why)
	}
	s := weightContents(m)[0].(*Section)
	if path, _ := probeInput(s.src.section(s.off, 100)); path != InputPread {
		t.Errorf("probe on 100 bytes chose %q, want pread (nothing to measure)", path)
	}
}
