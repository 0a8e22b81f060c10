package quant

import "math"

// roundMagic is 1.5·2^23. For |v| < 2^22, v + roundMagic in float32 rounds v
// to an integer, half to even (the float32 ulp there is 1), and the integer
// n sits in the low bits of the result: bits = 0x4b400000 + n. The exact
// path (quantizeExact) clips v first, so the trick always applies, and reads
// n from the low bits. The fast path uses the same idea with a finer grid
// (reciprocal.go).
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
	lo, hi := channelExtrema(src, l, symmetric)
	for c := range scales {
		e := extrema{absMax: uint32(hi[c])}
		if !symmetric {
			e = extrema{kmin: lo[c], kmax: hi[c]}
		}
		var ok bool
		if scales[c], zeroPoints[c], ok = e.params(symmetric); !ok {
			return CheckFinite(src)
		}
	}
	return nil
}

// extrema is what the int8 parameters of a channel need: max |x| as float32
// bits (symmetric) or the keys of min and max (asymmetric).
type extrema struct {
	absMax     uint32
	kmin, kmax int32
}

func (e *extrema) measure(s []float32, symmetric bool) {
	if symmetric {
		e.absMax = absMaxBits(s)
	} else {
		e.kmin, e.kmax = keyMinMax(s)
	}
}

// params returns the scale and zero point; ok is false if the channel holds
// NaN or ±Inf.
func (e *extrema) params(symmetric bool) (scale float32, zp int64, ok bool) {
	if symmetric {
		if e.absMax >= f32Inf {
			return 0, 0, false
		}
		return max(math.Float32frombits(e.absMax), scaleFloor) / 127, 0, true
	}
	mn, mx := fromKey(e.kmin), fromKey(e.kmax)
	if math.Float32bits(mn)&f32AbsMask >= f32Inf || math.Float32bits(mx)&f32AbsMask >= f32Inf {
		return 0, 0, false
	}
	scale, zp = asymmetricParams(mn, mx)
	return scale, zp, true
}

func asymmetricParams(mn, mx float32) (scale float32, zeroPoint int64) {
	bmin, bmax := min(mn, 0), max(mx, 0)
	scale = max(bmax-bmin, scaleFloor) / 255
	zp := float32(-128) - bmin/scale
	return scale, int64(math.RoundToEven(float64(zp)))
}

func abs32(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) }

// Extrema are found on integer encodings, which compile to compare-and-move
// instead of the several instructions a float min or max takes:
//   - symmetric needs only max |x|: the float32 bits with the sign cleared
//     order like the magnitudes, and NaN and Inf sort above every finite value;
//   - asymmetric needs min and max: key(x) flips the magnitude bits of
//     negative values so that signed integer order is float order, with
//     -NaN below -Inf and +NaN above +Inf.
func key(x float32) int32 {
	k := int32(math.Float32bits(x))
	return k ^ (k>>31)&0x7fffffff
}

// fromKey inverts key (key is its own inverse on the bits).
func fromKey(k int32) float32 { return math.Float32frombits(uint32(k ^ (k>>31)&0x7fffffff)) }

// channelExtrema returns, per channel, max |x| as float32 bits in hi
// (symmetric; lo is nil) or the keys of min and max in lo and hi. A channel
// of an empty tensor reads as all zeros.
func channelExtrema(src []float32, l layout, symmetric bool) (lo, hi []int32) {
	newArrays := func() (lo, hi []int32) {
		hi = make([]int32, l.channels)
		if !symmetric {
			lo = make([]int32, l.channels)
			for c := range lo {
				lo[c], hi[c] = math.MaxInt32, math.MinInt32
			}
		}
		return lo, hi
	}
	if len(src) == 0 {
		return make([]int32, l.channels), make([]int32, l.channels)
	}
	// Each part reduces into its own arrays; merging exact extrema gives
	// the same result for any split.
	bounds := split(len(src), 1)
	plo, phi := make([][]int32, len(bounds)-1), make([][]int32, len(bounds)-1)
	forParts(bounds, func(p, a, b int) {
		plo[p], phi[p] = newArrays()
		reduceExtrema(plo[p], phi[p], src, a, b, l)
	})
	lo, hi = plo[0], phi[0]
	for p := 1; p < len(phi); p++ {
		for c := range hi {
			hi[c] = max(hi[c], phi[p][c])
			if lo != nil {
				lo[c] = min(lo[c], plo[p][c])
			}
		}
	}
	return lo, hi
}

func reduceExtrema(lo, hi []int32, src []float32, a, b int, l layout) {
	if l.inner == 1 { // channel axis last: the channel changes every element
		c := a % l.channels
		for _, x := range src[a:b] {
			if lo == nil {
				hi[c] = max(hi[c], int32(math.Float32bits(x)&f32AbsMask))
			} else {
				k := key(x)
				lo[c], hi[c] = min(lo[c], k), max(hi[c], k)
			}
			if c++; c == l.channels {
				c = 0
			}
		}
		return
	}
	l.forRuns(a, b, func(a, b, c int) {
		if lo == nil {
			hi[c] = max(hi[c], int32(absMaxBits(src[a:b])))
			return
		}
		mn, mx := keyMinMax(src[a:b])
		lo[c], hi[c] = min(lo[c], mn), max(hi[c], mx)
	})
}

// absMaxBits is max |x| over s as float32 bits (see key), with four
// accumulators to hide the latency of the compare-and-move chain.
func absMaxBits(s []float32) uint32 {
	if m, rest, ok := absMaxBitsVec(s); ok {
		for _, x := range rest {
			m = max(m, math.Float32bits(x)&f32AbsMask)
		}
		return m
	}
	var m0, m1, m2, m3 uint32
	for len(s) >= 32 {
		in := (*[32]float32)(s)
		for j := 0; j < 32; j += 4 {
			m0 = max(m0, math.Float32bits(in[j])&f32AbsMask)
			m1 = max(m1, math.Float32bits(in[j+1])&f32AbsMask)
			m2 = max(m2, math.Float32bits(in[j+2])&f32AbsMask)
			m3 = max(m3, math.Float32bits(in[j+3])&f32AbsMask)
		}
		s = s[32:]
	}
	for _, x := range s {
		m0 = max(m0, math.Float32bits(x)&f32AbsMask)
	}
	return max(m0, m1, m2, m3)
}

// keyMinMax is the min and max key over a non-empty s.
func keyMinMax(s []float32) (mn, mx int32) {
	mn0, mn1 := int32(math.MaxInt32), int32(math.MaxInt32)
	mx0, mx1 := int32(math.MinInt32), int32(math.MinInt32)
	for len(s) >= 32 {
		in := (*[32]float32)(s)
		for j := 0; j < 32; j += 2 {
			k0, k1 := key(in[j]), key(in[j+1])
			mn0, mx0 = min(mn0, k0), max(mx0, k0)
			mn1, mx1 = min(mn1, k1), max(mx1, k1)
		}
		s = s[32:]
	}
	for _, x := range s {
		k := key(x)
		mn0, mx0 = min(mn0, k), max(mx0, k)
	}
	return min(mn0, mn1), max(mx0, mx1)
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
	var fast []fastParams
	if l.inner == 1 {
		fast = make([]fastParams, len(scales))
		for c := range fast {
			fast[c].r, fast[c].k = reciprocal(scales[c], float32(zeroPoints[c]))
		}
	}
	run := func(a, b, c int) {
		quantizeRunInt8(dst[a:b], src[a:b], scales[c], float32(zeroPoints[c]), lo, hi)
	}
	parallelFor(len(src), 1, func(a, b int) {
		var t uint32
		for ; a < b; a += streamChunk { // see stream.go
			e := min(a+streamChunk, b)
			t |= touch(src, a+touchDistance, e+touchDistance)
			if l.inner == 1 {
				quantizeInterleavedInt8(dst[a:e], src[a:e], a%l.channels, fast, scales, zeroPoints, lo, hi)
			} else {
				l.forRuns(a, e, run)
			}
		}
		touched.Store(t)
	})
}

// quantizeRunInt8 quantizes a run of one channel: by the reciprocal, with
// the rare elements near a rounding boundary or beyond the clip range
// recomputed exactly (see reciprocal.go).
func quantizeRunInt8(dst []int8, src []float32, scale, zp, lo, hi float32) {
	done, _ := quantizeRunInt8Vec(dst, src, src, scale, zp, lo, hi)
	dst, src = dst[done:len(src)], src[done:]
	r, k := reciprocal(scale, zp)
	g := newGrid(lo, hi)
	for i, x := range src {
		w := math.Float32bits(float32(x*r) + k)
		dst[i] = int8(w >> gridShift)
		if g.exact(w) {
			dst[i] = quantizeExact(x, scale, zp, lo, hi)
		}
	}
}

// fastParams is the reciprocal and offset of one channel (see reciprocal).
type fastParams struct{ r, k float32 }

// quantizeInterleavedInt8 handles the channel axis being the last one: the
// channel changes with every element, starting at channel c.
func quantizeInterleavedInt8(dst []int8, src []float32, c int, fast []fastParams, scales []float32, zps []int64, lo, hi float32) {
	g := newGrid(lo, hi)
	dst = dst[:len(src)]
	fast = fast[:len(scales)]
	for i, x := range src {
		p := fast[c]
		w := math.Float32bits(float32(x*p.r) + p.k)
		dst[i] = int8(w >> gridShift)
		if g.exact(w) {
			dst[i] = quantizeExact(x, scales[c], float32(zps[c]), lo, hi)
		}
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
