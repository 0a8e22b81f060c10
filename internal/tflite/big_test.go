package tflite

import (
	"bufio"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// procStatus returns a field of /proc/self/status in bytes, or -1.
func procStatus(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return -1
			}
			return kb << 10
		}
	}
	return -1
}

// resetPeak resets VmHWM to the current resident set (Linux ≥ 4.0).
func resetPeak() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

const mib = 1 << 20

// TestOver2GiB writes a model with 2.5 GiB of weights (five FLOAT32
// [32768, 4096] FULLY_CONNECTED weights, 512 MiB each, produced on demand)
// in the offset layout, reads it back with Open and checks every weight by
// sha256, logging the peak resident memory of each phase.
func TestOver2GiB(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 2.5 GiB; skipped with -short")
	}
	const rows, cols = 32768, 4096
	const size = rows * cols * 4
	var hashes [5][32]byte
	weights := make([]Content, len(hashes))
	for i := range weights {
		p := pattern(uint64(i+1), size)
		weights[i] = ContentFunc{N: size, Write: func(w io.Writer) error {
			h := sha256.New()
			if err := p.Write(io.MultiWriter(w, h)); err != nil {
				return err
			}
			copy(hashes[i][:], h.Sum(nil))
			return nil
		}}
	}
	m := syntheticModel(rows, cols, weights...)
	path := filepath.Join(t.TempDir(), "big.tflite")

	runtime.GC()
	measured := resetPeak()
	before := procStatus("VmRSS")
	if err := WriteFile(context.Background(), path, m, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	writePeak := procStatus("VmHWM")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() <= 5*size {
		t.Fatalf("file is %d bytes", fi.Size())
	}

	runtime.GC()
	resetPeak()
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Layout != LayoutOffset {
		t.Fatalf("layout %v, want offset", r.Layout)
	}
	for i := range weights {
		tensor := r.Meta.Subgraphs[0].Tensors[1+2*i]
		s := r.Buffers[tensor.Buffer].Data.(*Section)
		if s.Len() != size || s.Offset()%16 != 0 {
			t.Fatalf("weight %d: %d bytes at %d", i, s.Len(), s.Offset())
		}
		h := sha256.New()
		if _, err := s.WriteTo(h); err != nil {
			t.Fatal(err)
		}
		if [32]byte(h.Sum(nil)) != hashes[i] {
			t.Errorf("weight %d (%s): sha256 differs", i, tensor.Name)
		}
	}
	readPeak := procStatus("VmHWM")
	anon := procStatus("RssAnon")
	if !measured {
		t.Logf("file %d bytes; peak memory not measured (no /proc/self/clear_refs)", fi.Size())
		return
	}
	t.Logf("file %d bytes (%.2f GiB); RSS before %d MiB; peak RSS while writing %d MiB, while reading and hashing %d MiB; RssAnon after %d MiB",
		fi.Size(), float64(fi.Size())/(1<<30), before/mib, writePeak/mib, readPeak/mib, anon/mib)
	// Not a timing assertion: a streaming writer and reader need a few
	// chunks per worker, not the model.
	if limit := before + 512*mib; writePeak > limit || readPeak > limit {
		t.Errorf("peak RSS %d / %d MiB exceeds %d MiB: weights are being held in memory", writePeak/mib, readPeak/mib, limit/mib)
	}
}
