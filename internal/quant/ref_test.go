package quant_test

import (
	"math"
	"math/rand/v2"

	"github.com/qpipe/qpipe/internal/quant"
)

// Straightforward references for the kernels, written from SEMANTICS.md §6
// without any of the kernels' tricks: per element channel by multi-index,
// rint by math.RoundToEven, clip after rounding.

// refChannel is the channel of flat index i (axis -1: always 0).
func refChannel(i int, shape []int, axis int) int {
	if axis < 0 {
		return 0
	}
	for d := len(shape) - 1; d > axis; d-- {
		i /= shape[d]
	}
	return i % shape[axis]
}

func refParamsInt8(src []float32, shape []int, axis int, symmetric bool) ([]float32, []int64) {
	channels := 1
	if axis >= 0 {
		channels = shape[axis]
	}
	mins, maxs := make([]float32, channels), make([]float32, channels)
	seen := make([]bool, channels)
	for i, x := range src {
		c := refChannel(i, shape, axis)
		if !seen[c] || x < mins[c] {
			mins[c] = x
		}
		if !seen[c] || x > maxs[c] {
			maxs[c] = x
		}
		seen[c] = true
	}
	scales, zps := make([]float32, channels), make([]int64, channels)
	floor := float32(1e-9)
	for c := range channels {
		mn, mx := mins[c], maxs[c]
		if symmetric {
			bound := float32(math.Max(math.Max(math.Abs(float64(mn)), math.Abs(float64(mx))), float64(floor)))
			scales[c] = bound / 127
			continue
		}
		bmin, bmax := mn, mx
		if bmin > 0 {
			bmin = 0
		}
		if bmax < 0 {
			bmax = 0
		}
		rng := bmax - bmin
		if rng < floor {
			rng = floor
		}
		scales[c] = rng / 255
		zp := float32(-128) - bmin/scales[c]
		zps[c] = int64(math.RoundToEven(float64(zp)))
	}
	return scales, zps
}

func refQuantizeInt8(src []float32, shape []int, axis int, scales []float32, zps []int64, symmetric bool) []int8 {
	qmin, qmax := -128.0, 127.0
	if symmetric {
		qmin = -127
	}
	q := make([]int8, len(src))
	for i, x := range src {
		c := refChannel(i, shape, axis)
		v := x/scales[c] + float32(zps[c])
		r := math.RoundToEven(float64(v))
		q[i] = int8(math.Min(math.Max(r, qmin), qmax))
	}
	return q
}

// refScaleInt4 is the float16 bits of one block's scale.
func refScaleInt4(block []float32, clampTiny bool) uint16 {
	bound := float32(1e-9)
	for _, x := range block {
		if a := float32(math.Abs(float64(x))); a > bound {
			bound = a
		}
	}
	s := bound / 7
	if clampTiny && s < quant.MinNormalFloat16 {
		s = quant.MinNormalFloat16
	}
	return refFloat16Bits(refBFloat16Round(s))
}

func refQuantizeInt4(src []float32, blockSize int, scales []uint16) []int8 {
	q := make([]int8, len(src))
	for i, x := range src {
		s := float32(refHalfValue(scales[i/blockSize]))
		r := math.RoundToEven(float64(x / s))
		if math.IsNaN(r) { // 0/0 in an all-zero block with a zero scale
			r = 0
		}
		q[i] = int8(math.Min(math.Max(r, -8), 7))
	}
	return q
}

func refPackInt4(q []int8) []byte {
	out := make([]byte, (len(q)+1)/2)
	for i, v := range q {
		out[i/2] |= byte(v&0xf) << (4 * (i % 2))
	}
	return out
}

// randomTensor draws n values from a mix of distributions that real weights
// and their pathologies show: gaussian, uniform, heavy outliers, exact zeros,
// tiny magnitudes, constant runs.
func randomTensor(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	kind := r.IntN(6)
	scale := math.Pow(10, r.Float64()*8-6)
	for i := range x {
		switch kind {
		case 0:
			x[i] = float32(r.NormFloat64() * scale)
		case 1:
			x[i] = float32((r.Float64()*2 - 1) * scale)
		case 2:
			x[i] = float32(r.NormFloat64() * scale)
			if r.IntN(50) == 0 {
				x[i] *= 100
			}
		case 3:
			if r.IntN(3) == 0 {
				x[i] = float32(r.NormFloat64() * scale)
			}
		case 4:
			x[i] = float32(r.NormFloat64() * 1e-6)
		case 5:
			x[i] = float32(scale) * float32(1+i/97%3)
		}
	}
	return x
}
