package interp

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/qpipe/qpipe/internal/quant"
)

// LLM-sized FULLY_CONNECTED: weights [N, K] = [5632, 2048] (a 1B model's
// feed-forward up projection), M rows of activations. Each benchmark
// reports GFLOP/s (2·M·N·K per op) and, for the weight-streaming bound, the
// GB/s of a plain read of the same weight bytes.

const benchN, benchK = 5632, 2048

func benchWeights(kind weightKind) *weight {
	r := rand.New(rand.NewPCG(1, 2))
	w := &weight{shape: []int{benchN, benchK}, kind: kind}
	n := benchN * benchK
	switch kind {
	case wFloat32:
		w.f32 = make([]float32, n)
		for i := range w.f32 {
			w.f32[i] = r.Float32()*2 - 1
		}
	case wInt8:
		w.raw = make([]byte, n)
		for i := range w.raw {
			w.raw[i] = byte(r.IntN(255) - 127)
		}
		w.scale, w.zp, w.axisStride, w.axisDim = make([]float32, benchN), make([]int32, benchN), benchK, benchN
		for i := range w.scale {
			w.scale[i] = 0.01
		}
		w.quantized = true
	case wInt4:
		w.raw = make([]byte, n/2)
		for i := range w.raw {
			w.raw[i] = byte(r.Uint32())
		}
		w.block = 32
		w.bscaleRaw = make([]byte, 2*n/32)
		for i := 0; i < n/32; i++ {
			binary.LittleEndian.PutUint16(w.bscaleRaw[2*i:], quant.Float16Bits(0.01))
		}
		w.quantized = true
	}
	return w
}

func benchInput(M int) []float32 {
	r := rand.New(rand.NewPCG(3, 4))
	a := make([]float32, M*benchK)
	for i := range a {
		a[i] = r.Float32()*2 - 1
	}
	return a
}

// reportGFLOPs reports the GFLOP/s of b (2·M·N·K per op) over the wall
// time and over the process's CPU time since cpu0 (cpuSeconds before the
// loop): on a shared machine the second is what the code does while it
// runs; ×threads it compares with the peak of that many cores.
func reportGFLOPs(b *testing.B, M int, cpu0 float64) {
	reportFlops(b, 2*float64(M)*benchN*benchK*float64(b.N), cpu0)
}

func reportFlops(b *testing.B, flops, cpu0 float64) {
	b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	b.ReportMetric(flops/(cpuSeconds()-cpu0)/1e9, "GFLOP/cpu-s")
}

// cpuSeconds is the user+system time of the process.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// BenchmarkFC runs each form with the vector tiles (simd) and the scalar Go
// kernels (go), at 1 thread and GOMAXPROCS threads; BenchmarkPeak is the
// ceiling to compare with.
func BenchmarkFC(b *testing.B) {
	threads := runtime.GOMAXPROCS(0)
	for _, M := range []int{64, 1} {
		a := benchInput(M)
		out := make([]float32, M*benchN)
		for _, kc := range []struct {
			name string
			kind weightKind
		}{{"f32", wFloat32}, {"int8", wInt8}, {"int4b32", wInt4}} {
			w := benchWeights(kc.kind)
			for _, form := range []string{"simd", "go"} {
				if form == "simd" && !hasSIMD {
					continue
				}
				for _, th := range []int{1, threads} {
					b.Run(fmt.Sprintf("M=%d/%s/%s/threads=%d", M, kc.name, form, th), func(b *testing.B) {
						was := useSIMD
						useSIMD = form == "simd"
						defer func() { useSIMD = was }()
						cpu0 := cpuSeconds()
						for b.Loop() {
							if w.quantized {
								hybridFC(th, out, a, M, benchK, benchN, w, nil)
							} else {
								matmulF32(th, out, a, M, benchK, benchN, w, 0)
							}
						}
						reportGFLOPs(b, M, cpu0)
					})
				}
			}
			if kc.kind == wFloat32 {
				b.Run(fmt.Sprintf("M=%d/f32/naive", M), func(b *testing.B) {
					cpu0 := cpuSeconds()
					for b.Loop() {
						matmulNaive(out, a, M, benchK, benchN, w.f32)
					}
					reportGFLOPs(b, M, cpu0)
				})
			}
		}
	}
	// The bandwidth bound: one plain read of the weight bytes of each form.
	for _, kc := range []struct {
		name  string
		bytes int
	}{{"f32", 4 * benchN * benchK}, {"int8", benchN * benchK}, {"int4b32", benchN * benchK / 2}} {
		buf := make([]byte, kc.bytes)
		for i := range buf {
			buf[i] = byte(i)
		}
		b.Run("read/"+kc.name, func(b *testing.B) {
			b.SetBytes(int64(kc.bytes))
			var s uint64
			for b.Loop() {
				s += readAll(buf)
			}
			sink = s
		})
	}
}

var sink uint64

// readAll sums the bytes 8 at a time: a plain read at memory speed.
func readAll(b []byte) uint64 {
	var s0, s1, s2, s3 uint64
	for i := 0; i+32 <= len(b); i += 32 {
		s0 += binary.LittleEndian.Uint64(b[i:])
		s1 += binary.LittleEndian.Uint64(b[i+8:])
		s2 += binary.LittleEndian.Uint64(b[i+16:])
		s3 += binary.LittleEndian.Uint64(b[i+24:])
	}
	return s0 + s1 + s2 + s3
}

// BenchmarkPeak is the machine's float32 ceiling: register-only loops of 12
// independent 8-lane chains, fused multiply-adds (fma) or a multiply then
// an add (muladd, what the GEMM tiles do), on 1 thread and on GOMAXPROCS
// threads (one loop per thread). GFLOP/s counts 2 flops per lane and pair.
func BenchmarkPeak(b *testing.B) {
	if !hasSIMD {
		b.Skip("no vector tiles on this CPU")
	}
	const iters = 1 << 20 // 192 flops each
	for _, k := range []struct {
		name string
		f    func(int)
	}{{"fma", peakFMA}, {"muladd", peakMulAdd}} {
		if k.name == "fma" && !hasFMA {
			continue
		}
		for _, th := range []int{1, runtime.GOMAXPROCS(0)} {
			b.Run(fmt.Sprintf("%s/threads=%d", k.name, th), func(b *testing.B) {
				cpu0 := cpuSeconds()
				for b.Loop() {
					parallel(th, th, 1, func(_, _, _ int) { k.f(iters) })
				}
				reportFlops(b, 192*iters*float64(th)*float64(b.N), cpu0)
			})
		}
	}
}
