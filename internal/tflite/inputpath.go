package tflite

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Reading large weights: through the mapping or by positioned reads.
//
// Which is cheaper depends on the machine: the mapping costs a page fault
// per 4-64 KiB, pread a copy of every byte, and between two 2-vCPU VMs the
// faster way differed by 2x in each direction (docs/METHODS.md §3). So the
// first large section a process reads decides, by timing both ways on a few
// MiB of that section (warm in the page cache first, so that the disk is
// not what is measured); QPIPE_INPUT=mmap or pread sets the choice instead.
// The choice changes no output byte.

// Input paths (InputPath).
const (
	InputMapped = "mmap"
	InputPread  = "pread"
)

// pageSize is the unit of releaseMapped (the page size or a multiple).
var pageSize = int64(os.Getpagesize())

// probeBytes is how much of the first large section the probe reads: two
// halves, each timed both ways, the faster of the two kept per way.
const probeBytes = 8 << 20

var input struct {
	once   sync.Once
	choice atomic.Pointer[[2]string] // path, why
}

// InputPath returns how this process reads the large weights of mapped
// inputs (InputMapped or InputPread) and why, or "" before the first
// large section was read.
func InputPath() (path, why string) {
	if c := input.choice.Load(); c != nil {
		return c[0], c[1]
	}
	return "", ""
}

// inputPath decides (once) and returns the input path, probing on s.
func inputPath(s *Section) string {
	input.once.Do(func() {
		var path, why string
		switch v := os.Getenv("QPIPE_INPUT"); v {
		case InputMapped, InputPread:
			path, why = v, "QPIPE_INPUT="+v
		default:
			path, why = probeInput(s)
			if v != "" && v != "auto" {
				why = fmt.Sprintf("QPIPE_INPUT=%q is not mmap, pread or auto; %s", v, why)
			}
		}
		input.choice.Store(&[2]string{path, why})
	})
	path, _ := InputPath()
	return path
}

// probeInput times reading two halves of the start of s through the
// mapping and by pread (each half read once before, so that it is in the
// page cache), and returns the faster way.
func probeInput(s *Section) (string, string) {
	n := min(s.n, probeBytes) &^ (2*pageSize - 1)
	if n == 0 {
		return InputPread, "section too small to measure"
	}
	bp := getBuf(bufSize)
	defer putBuf(bp)
	half := n / 2
	var tMap, tRead time.Duration = 1 << 62, 1 << 62
	for h := int64(0); h < 2; h++ {
		lo := h * half
		if err := preadConsume(s, *bp, lo, half); err != nil { // into the page cache
			return InputPread, "probe read failed: " + err.Error()
		}
		t0 := time.Now()
		if err := preadConsume(s, *bp, lo, half); err != nil {
			return InputPread, "probe read failed: " + err.Error()
		}
		t1 := time.Now()
		consumeLines(s.src.data[s.off+lo : s.off+lo+half])
		t2 := time.Now()
		tRead, tMap = min(tRead, t1.Sub(t0)), min(tMap, t2.Sub(t1))
	}
	rate := func(d time.Duration) float64 { return float64(half) / max(d.Seconds(), 1e-9) / 1e9 }
	detail := fmt.Sprintf("probe on %d MiB: mapping %.1f GB/s, pread %.1f GB/s", n>>20, rate(tMap), rate(tRead))
	if tMap < tRead {
		return InputMapped, detail
	}
	return InputPread, detail
}

// preadConsume reads n bytes of s from off by pread into buf, a piece at a
// time, loading a word of every cache line as a kernel would.
func preadConsume(s *Section, buf []byte, off, n int64) error {
	for n > 0 {
		p := buf[:min(int64(len(buf)), n)]
		if err := s.readAt(p, off); err != nil {
			return err
		}
		consumeLines(p)
		off += int64(len(p))
		n -= int64(len(p))
	}
	return nil
}

// consumed keeps consumeLines's loads from being removed.
var consumed uint64

// consumeLines loads one word of every 64-byte line of p.
func consumeLines(p []byte) {
	var x uint64
	for i := 0; i+8 <= len(p); i += 64 {
		x ^= *(*uint64)(unsafe.Pointer(&p[i]))
	}
	consumed ^= x
}
