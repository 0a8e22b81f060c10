package quant_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qpipe/qpipe/internal/quant"
)

// Every benchmark reports float32 input bytes per second (b.SetBytes), on a
// 256 MiB tensor (memory-bound territory) and a 256 KiB one (cache-resident),
// with 1 and 2 workers. BenchmarkMemRead is the ceiling: a plain sum over the
// same bytes.

const benchCols = 4096

var benchSizes = []struct {
	name  string
	bytes int
}{{"256KiB", 256 << 10}, {"256MiB", 256 << 20}}

var (
	benchOnce sync.Once
	benchData []float32
)

// benchTensor returns n gaussian weights (σ = 0.02, as in real layers).
func benchTensor(n int) []float32 {
	benchOnce.Do(func() {
		r := rand.New(rand.NewPCG(11, 12))
		benchData = make([]float32, (256<<20)/4)
		for i := range benchData {
			benchData[i] = float32(r.NormFloat64() * 0.02)
		}
	})
	return benchData[:n]
}

// runBench times op, which setup prepares for a tensor (outputs allocated
// and touched once by an untimed warm-up run, so that page faults of fresh
// memory are not measured).
func runBench(b *testing.B, setup func(b *testing.B, src []float32) (op func())) {
	for _, size := range benchSizes {
		for _, w := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/workers=%d", size.name, w), func(b *testing.B) {
				src := benchTensor(size.bytes / 4)
				defer quant.SetWorkers(quant.SetWorkers(w))
				op := setup(b, src)
				op()
				b.SetBytes(int64(size.bytes))
				cpu0 := cpuTime()
				for b.Loop() {
					op()
				}
				// The machine may be shared: also report bytes per second
				// of CPU time this process used (summed over its threads,
				// so a per-core figure), which time slicing by other
				// processes does not dilute.
				if cpu := cpuTime() - cpu0; cpu > 0 {
					b.ReportMetric(float64(size.bytes)*float64(b.N)/cpu.Seconds()/1e6, "MB/cpu-s")
				}
			})
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

var sink float32

func BenchmarkMemRead(b *testing.B) {
	runBench(b, func(b *testing.B, src []float32) func() {
		sums := make([]float32, 64)
		return func() {
			forWorkers(len(src), func(p, lo, hi int) {
				s := src[lo:hi]
				var a0, a1, a2, a3 float32
				for i := 0; i+4 <= len(s); i += 4 {
					q := s[i : i+4 : i+4]
					a0 += q[0]
					a1 += q[1]
					a2 += q[2]
					a3 += q[3]
				}
				sums[p] = a0 + a1 + a2 + a3
			})
			sink = sums[0]
		}
	})
}

// BenchmarkMemReadWrite16 and BenchmarkMemReadWrite8 move the bytes of the
// float16 and int8 kernels (read 4, write 2 or 1 per element) with no
// arithmetic: the ceiling those kernels meet on tensors that do not fit in
// cache.
func BenchmarkMemReadWrite16(b *testing.B) {
	runBench(b, func(b *testing.B, src []float32) func() {
		dst := make([]uint16, len(src))
		return func() {
			forWorkers(len(src), func(_, lo, hi int) {
				d := dst[lo:hi]
				for i, x := range src[lo:hi] {
					d[i] = uint16(math.Float32bits(x) >> 16)
				}
			})
		}
	})
}

func BenchmarkMemReadWrite8(b *testing.B) {
	runBench(b, func(b *testing.B, src []float32) func() {
		dst := make([]int8, len(src))
		return func() {
			forWorkers(len(src), func(_, lo, hi int) {
				d := dst[lo:hi]
				for i, x := range src[lo:hi] {
					d[i] = int8(math.Float32bits(x) >> 24)
				}
			})
		}
	})
}

// forWorkers splits [0, n) evenly over the SetWorkers count, like the kernels.
func forWorkers(n int, fn func(p, lo, hi int)) {
	w := quant.SetWorkers(0)
	quant.SetWorkers(w)
	var wg sync.WaitGroup
	for p := range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(p, n*p/w, n*(p+1)/w)
		}()
	}
	wg.Wait()
}

// BenchmarkInt8PerChannel: symmetric parameters and quantization of a
// [rows, 4096] weight along axis 0, the dynamic int8 path.
func BenchmarkInt8PerChannel(b *testing.B) {
	runBench(b, func(b *testing.B, src []float32) func() {
		shape := []int{len(src) / benchCols, benchCols}
		scales, zps := make([]float32, shape[0]), make([]int64, shape[0])
		dst := make([]int8, len(src))
		return func() {
			if err := quant.ChannelParamsInt8(scales, zps, src, shape, 0, true); err != nil {
				b.Fatal(err)
			}
			quant.QuantizeInt8(dst, src, shape, 0, scales, zps, true)
		}
	})
}

// BenchmarkInt8PerChannelFused is the same work through QuantizeRowsInt8,
// which quantizes each row right after measuring it.
func BenchmarkInt8PerChannelFused(b *testing.B) {
	runBench(b, func(b *testing.B, src []float32) func() {
		rows := len(src) / benchCols
		scales, zps := make([]float32, rows), make([]int64, rows)
		dst := make([]int8, len(src))
		return func() {
			if err := quant.QuantizeRowsInt8(dst, scales, zps, src, benchCols, true); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkInt8Quantize is the quantization pass alone (parameters known).
func BenchmarkInt8Quantize(b *testing.B) {
	runBench(b, func(b *testing.B, src []float32) func() {
		shape := []int{len(src) / benchCols, benchCols}
		scales, zps := make([]float32, shape[0]), make([]int64, shape[0])
		if err := quant.ChannelParamsInt8(scales, zps, src, shape, 0, false); err != nil {
			b.Fatal(err)
		}
		dst := make([]int8, len(src))
		return func() { quant.QuantizeInt8(dst, src, shape, 0, scales, zps, false) }
	})
}

// BenchmarkInt4Block32: block scales and packed quantization, block 32.
func BenchmarkInt4Block32(b *testing.B) {
	runBench(b, func(b *testing.B, src []float32) func() {
		scales := make([]uint16, len(src)/32)
		dst := make([]byte, len(src)/2)
		return func() {
			if _, err := quant.BlockParamsInt4(scales, src, benchCols, 32, true); err != nil {
				b.Fatal(err)
			}
			quant.QuantizeInt4(dst, src, benchCols, 32, scales)
		}
	})
}

// BenchmarkInt4Block32Fused is the same work through QuantizeBlocksInt4.
func BenchmarkInt4Block32Fused(b *testing.B) {
	runBench(b, func(b *testing.B, src []float32) func() {
		scales := make([]uint16, len(src)/32)
		dst := make([]byte, len(src)/2)
		return func() {
			if _, err := quant.QuantizeBlocksInt4(dst, scales, src, benchCols, 32, true); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkInt4Block32Search is QuantizeBlocksInt4 with the data-free
// scale search (compare with BenchmarkInt4Block32Fused).
func BenchmarkInt4Block32Search(b *testing.B) {
	runBench(b, func(b *testing.B, src []float32) func() {
		scales := make([]uint16, len(src)/32)
		dst := make([]byte, len(src)/2)
		return func() {
			if _, err := quant.SearchBlocksInt4(dst, scales, src, benchCols, 32, true, nil, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkFloat16(b *testing.B) {
	runBench(b, func(b *testing.B, src []float32) func() {
		dst := make([]uint16, len(src))
		return func() {
			if err := quant.ToFloat16(dst, src); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkInt4Block32SearchCalibrated is the calibrated scale search
// (activation statistics as testStats).
func BenchmarkInt4Block32SearchCalibrated(b *testing.B) {
	st := testStats(benchCols)
	runBench(b, func(b *testing.B, src []float32) func() {
		scales := make([]uint16, len(src)/32)
		dst := make([]byte, len(src)/2)
		return func() {
			if _, err := quant.SearchBlocksInt4(dst, scales, src, benchCols, 32, true, st, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}
