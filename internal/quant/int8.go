package quant

import "math"

// roundMagic is 1.5·2^23. For |v| < 2^22, v + roundMagic in float32 rounds v
// to an integer, half to even (the float32 ulp there is 1), and the integer
// n sits in the low bits of the result: bits = 0x4b400000 + n. Kernels clip
// v first, so the trick always applies, and read n from the low bits.
const roundMagic = 12582912

// scaleFloor keeps the scale of an all-zero channel positive, as the
// reference does: bound = max(|min|, |max|, 1e-9), in float32.
const scaleFloor = float32(1e-9)

// Int8Range returns the clipping range of int8 quantization: narrow
// [-127, 127] when symmetric, full [-128, 127] otherwise.
func Int8Range(symmetric bool) (qmin, qmax int) {
	if symmetric {
		return -127, 127
	}
	return -128, 127
}

// ChannelParamsInt8 computes int8 min-max parameters for each channel of
// src, a row-major tensor of the given shape whose channel axis is axis (any
// axis of any rank; axis -1 means per-tensor: one scale and zero point).
// len(scales) and len(zeroPoints) must equal the channel count (1 for -1).
//
// Symmetric: bound = max(|min|, |max|, 1e-9), scale = bound/127, zero point 0.
// Asymmetric: bmin = min(min, 0), bmax = max(max, 0),
// scale = max(bmax−bmin, 1e-9)/255, zero point = rint(−128 − bmin/scale).
// Every step is float32, as in the reference quantizer.
//
// It returns a *ValueError (NotFinite) if src holds NaN or ±Inf; scales and
// zeroPoints are then unspecified.
func ChannelParamsInt8(scales []float32, zeroPoints []int64, src []float32, shape []int, axis int, symmetric bool) error {
	l := channelLayout("ChannelParamsInt8", len(src), shape, axis)
	if len(scales) != l.channels || len(zeroPoints) != l.channels {
		panicf("ChannelParamsInt8: %d channels, len(scales) = %d, len(zeroPoints) = %d",
			l.channels, len(scales), len(zeroPoints))
	}
	mins, maxs := channelMinMax(src, l)
	for c := range mins {
		mn, mx := mins[c], maxs[c]
		if math.Float32bits(mn)&f32AbsMask >= f32Inf || math.Float32bits(mx)&f32AbsMask >= f32Inf {
			return CheckFinite(src)
		}
		scales[c], zeroPoints[c] = int8Params(mn, mx, symmetric)
	}
	return nil
}

func int8Params(mn, mx float32, symmetric bool) (scale float32, zeroPoint int64) {
	if symmetric {
		bound := max(abs32(mn), abs32(mx), scaleFloor)
		return bound / 127, 0
	}
	bmin, bmax := min(mn, 0), max(mx, 0)
	scale = max(bmax-bmin, scaleFloor) / 255
	zp := float32(-128) - bmin/scale
	return scale, int64(math.RoundToEven(float64(zp)))
}

func abs32(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) }

// channelMinMax returns per-channel minima and maxima. NaN is sticky (the
// builtin min and max propagate it), so a non-finite input shows up as a
// non-finite minimum or maximum. Channels of an empty tensor get 0, 0.
func channelMinMax(src []float32, l layout) (mins, maxs []float32) {
	if len(src) == 0 {
		return make([]float32, l.channels), make([]float32, l.channels)
	}
	// Each part reduces into its own arrays; merging exact minima and maxima
	// gives the same result for any split.
	bounds := split(len(src), 1)
	pmin, pmax := make([][]float32, len(bounds)-1), make([][]float32, len(bounds)-1)
	forParts(bounds, func(p, lo, hi int) {
		mn, mx := make([]float32, l.channels), make([]float32, l.channels)
		for c := range mn {
			mn[c], mx[c] = float32(math.Inf(1)), float32(math.Inf(-1))
		}
		reduceMinMax(mn, mx, src, lo, hi, l)
		pmin[p], pmax[p] = mn, mx
	})
	mins, maxs = pmin[0], pmax[0]
	for p := 1; p < len(pmin); p++ {
		for c := range mins {
			mins[c] = min(mins[c], pmin[p][c])
			maxs[c] = max(maxs[c], pmax[p][c])
		}
	}
	return mins, maxs
}

func reduceMinMax(mins, maxs []float32, src []float32, lo, hi int, l layout) {
	if l.inner == 1 {
		c := lo % l.channels
		for _, x := range src[lo:hi] {
			mins[c] = min(mins[c], x)
			maxs[c] = max(maxs[c], x)
			if c++; c == l.channels {
				c = 0
			}
		}
		return
	}
	l.forRuns(lo, hi, func(a, b, c int) {
		mn, mx := runMinMax(src[a:b])
		mins[c] = min(mins[c], mn)
		maxs[c] = max(maxs[c], mx)
	})
}

// runMinMax is min and max of a non-empty slice, with four independent
// accumulator pairs to hide the latency of min and max.
func runMinMax(s []float32) (mn, mx float32) {
	mn0, mx0 := s[0], s[0]
	mn1, mx1, mn2, mx2, mn3, mx3 := mn0, mx0, mn0, mx0, mn0, mx0
	i := 0
	for ; i+4 <= len(s); i += 4 {
		q := s[i : i+4 : i+4]
		mn0, mx0 = min(mn0, q[0]), max(mx0, q[0])
		mn1, mx1 = min(mn1, q[1]), max(mx1, q[1])
		mn2, mx2 = min(mn2, q[2]), max(mx2, q[2])
		mn3, mx3 = min(mn3, q[3]), max(mx3, q[3])
	}
	for _, x := range s[i:] {
		mn0, mx0 = min(mn0, x), max(mx0, x)
	}
	return min(mn0, mn1, mn2, mn3), max(mx0, mx1, mx2, mx3)
}

// QuantizeInt8 writes q = clip(rint(x/scale + zeroPoint)) for every element
// of src, using its channel's scale and zero point (layout as in
// ChannelParamsInt8), with x/scale + zeroPoint in float32 and rint rounding
// half to even. The clip range is Int8Range(symmetric).
//
// Streaming: for axis 0 (and per-tensor) the tensor can be quantized in
// chunks of whole rows: pass the chunk, its shape and its slice of scales.
// src should be finite (ChannelParamsInt8 checks it); a NaN gives an
// unspecified value.
func QuantizeInt8(dst []int8, src []float32, shape []int, axis int, scales []float32, zeroPoints []int64, symmetric bool) {
	l := channelLayout("QuantizeInt8", len(src), shape, axis)
	if len(dst) != len(src) || len(scales) != l.channels || len(zeroPoints) != l.channels {
		panicf("QuantizeInt8: len(dst) = %d, len(src) = %d, %d channels, len(scales) = %d, len(zeroPoints) = %d",
			len(dst), len(src), l.channels, len(scales), len(zeroPoints))
	}
	if len(src) == 0 {
		return
	}
	qmin, qmax := Int8Range(symmetric)
	lo, hi := float32(qmin), float32(qmax)
	parallelFor(len(src), 1, func(a, b int) {
		if l.inner == 1 {
			quantizeInterleavedInt8(dst[a:b], src[a:b], a%l.channels, scales, zeroPoints, lo, hi)
			return
		}
		l.forRuns(a, b, func(a, b, c int) {
			quantizeRunInt8(dst[a:b], src[a:b], scales[c], float32(zeroPoints[c]), lo, hi)
		})
	})
}

func quantizeRunInt8(dst []int8, src []float32, scale, zp, lo, hi float32) {
	dst = dst[:len(src)]
	for i, x := range src {
		v := x/scale + zp
		v = max(min(v, hi), lo)
		dst[i] = int8(math.Float32bits(v + roundMagic))
	}
}

// quantizeInterleavedInt8 handles the channel axis being the last one: the
// channel changes with every element, starting at channel c.
func quantizeInterleavedInt8(dst []int8, src []float32, c int, scales []float32, zps []int64, lo, hi float32) {
	dst = dst[:len(src)]
	for i, x := range src {
		v := x/scales[c] + float32(zps[c])
		v = max(min(v, hi), lo)
		dst[i] = int8(math.Float32bits(v + roundMagic))
		if c++; c == len(scales) {
			c = 0
		}
	}
}

// DequantizeInt8 writes x = float32(q − zeroPoint) · scale, per channel
// (layout as in ChannelParamsInt8), as the runtime's DEQUANTIZE does.
func DequantizeInt8(dst []float32, src []int8, shape []int, axis int, scales []float32, zeroPoints []int64) {
	l := channelLayout("DequantizeInt8", len(src), shape, axis)
	if len(dst) != len(src) || len(scales) != l.channels || len(zeroPoints) != l.channels {
		panicf("DequantizeInt8: len(dst) = %d, len(src) = %d, %d channels, len(scales) = %d, len(zeroPoints) = %d",
			len(dst), len(src), l.channels, len(scales), len(zeroPoints))
	}
	parallelFor(len(src), 1, func(a, b int) {
		l.forRuns(a, b, func(a, b, c int) {
			dequantizeRunInt8(dst[a:b], src[a:b], scales[c], zeroPoints[c])
		})
	})
}

func dequantizeRunInt8(dst []float32, src []int8, scale float32, zp int64) {
	dst = dst[:len(src)]
	for i, q := range src {
		dst[i] = float32(int64(q)-zp) * scale
	}
}
