package interp

import (
	"math"

	"github.com/qpipe/qpipe/internal/quant"
)

// Hybrid ("dynamic range") kernels: float activations, int8 or int4
// weights. The runtime quantizes the activations on the fly and multiplies
// integers; these functions reproduce its arithmetic (see doc.go for the
// sources).

// rowQuant is one activation row's dynamic quantization: q = clamp(rint(x ·
// mult) + zp) and x ≈ (q − zp)·scale.
type rowQuant struct {
	scale float32 // dequantization scale (XNNPACK's inv_scale)
	zp    int32
}

// quantizeRowAsym quantizes one row as XNNPACK's f32→qd8 convert does
// (xnn_f32_qd8_asymmetric_quantization_params + f32-qs8-vcvt): the range is
// [min(0, min x), max(0, max x)] mapped onto [−128, 127], the zero point
// nudged to an integer (round half to even), the scale 1/multiplier; each
// value is multiplied by 1/scale, rounded half to even and offset by the
// zero point, saturating.
func quantizeRowAsym(dst []int8, src []float32) rowQuant {
	lo, hi := float32(0), float32(0)
	for _, v := range src {
		lo = min(lo, v)
		hi = max(hi, v)
	}
	const qmin, qmax = float32(-128), float32(127)
	mult := float32(1)
	if lo != hi {
		mult = (qmax - qmin) / (hi - lo)
	}
	dmin := float32(lo * mult) // rounded: no fused multiply-add (doc.go)
	dmax := float32(hi * mult)
	var zpf float32
	if (qmin+dmin)+(qmax+dmax) > 0 {
		zpf = qmin - dmin
	} else {
		zpf = qmax - dmax
	}
	zpf = min(max(zpf, qmin), qmax)
	zp := int32(math.RoundToEven(float64(zpf)))
	scale := 1 / mult
	conv := 1 / scale
	lim0, lim1 := float32(-128-zp), float32(127-zp)
	for i, v := range src {
		x := v * conv
		x = min(max(x, lim0), lim1)
		dst[i] = int8(int32(math.RoundToEven(float64(x))) + zp)
	}
	return rowQuant{scale: scale, zp: zp}
}

// hybridFC computes out[m·N+n] for float rows a [M,K] against quantized
// weight rows (int8 or int4, per-channel or blockwise): the activations are
// quantized per row, multiplied in int32, and scaled back as XNNPACK's
// qd8-f32-qc8w / qc4w / qb4w GEMMs do. bias may be nil.
func hybridFC(threads int, out, a []float32, M, K, N int, w *weight, bias []float32) {
	cb := callPool.Get().(*callBuffers)
	defer callPool.Put(cb)
	qa := grow(&cb.qa, M*K)
	rq := make([]rowQuant, M)
	// Rows are quantized independently: split over the workers.
	parallel(threads, M, max(1, elementGrain/max(K, 1)), func(_, lo, hi int) {
		for m := lo; m < hi; m++ {
			rq[m] = quantizeRowAsym(qa[m*K:(m+1)*K], a[m*K:(m+1)*K])
		}
	})
	if hybridVecOK(w, M, K) {
		hybridFCVec(threads, out, qa, rq, M, K, N, w, bias)
		return
	}
	scratch := make([][]int8, max(threads, 1))
	accs := make([][]int32, max(threads, 1))
	packs := make([][]int64, max(threads, 1))
	faccs := make([][]float32, max(threads, 1))
	parallel(threads, N, nBlock, func(worker, lo, hi int) {
		var rows []int8
		if w.kind == wInt8 {
			rows = quant.BytesInt8(w.raw[lo*K : hi*K])
		} else {
			if scratch[worker] == nil {
				scratch[worker] = make([]int8, nBlock*K)
			}
			rows = scratch[worker][:(hi-lo)*K]
			w.ints(rows, lo*K)
		}
		// Σ_k w over the row (or block) corrects for the zero point:
		// Σ (q−zp)·w = Σ q·w − zp·Σ w.
		if accs[worker] == nil {
			accs[worker] = make([]int32, M*nBlock)
		}
		acc := accs[worker]
		if packs[worker] == nil {
			packs[worker] = make([]int64, 2*min(K, maxPackedK))
		}
		pack := packs[worker]
		if w.block == 0 {
			clear(acc)
			gemmInt8(acc, hi-lo, qa, M, K, rows, lo, hi, 0, K, pack)
			for n := lo; n < hi; n++ {
				ws := rowSum(rows[(n-lo)*K : (n-lo+1)*K])
				s, _ := w.channel(n * K)
				for m := 0; m < M; m++ {
					v := acc[m*(hi-lo)+n-lo] - rq[m].zp*ws
					y := float32(float32(float32(v)*rq[m].scale) * s)
					if bias != nil {
						y += bias[n]
					}
					out[m*N+n] = y
				}
			}
			return
		}
		// Blockwise int4 (XNNPACK qd8-f32-qb4w): the packed weights carry
		// ksum = −Σ_b s_b·Σ_{k∈b} w (float, block order); the GEMM starts
		// from ksum·zp_a, adds float(Σ_{k∈b} q_a·w)·s_b block by block,
		// then multiplies by the row's scale and adds the bias.
		// The float sums are kept in f, [M][hi−lo], until the end.
		B, W := w.block, hi-lo
		if faccs[worker] == nil {
			faccs[worker] = make([]float32, M*nBlock)
		}
		f := faccs[worker][:M*W]
		for n := lo; n < hi; n++ {
			var ksum float32
			for k0 := 0; k0 < K; k0 += B {
				ws := rowSum(rows[(n-lo)*K+k0 : (n-lo)*K+k0+B])
				ksum -= float32(float32(ws) * w.blockScaleBF16((n*K+k0)/B))
			}
			for m := 0; m < M; m++ {
				f[m*W+n-lo] = ksum * float32(rq[m].zp)
			}
		}
		var bs [nBlock]float32
		for k0 := 0; k0 < K; k0 += B {
			clear(acc)
			gemmInt8(acc, W, qa, M, K, rows, lo, hi, k0, k0+B, pack)
			for j := range W {
				bs[j] = w.blockScaleBF16(((lo+j)*K + k0) / B)
			}
			for m := 0; m < M; m++ {
				fr := f[m*W : (m+1)*W]
				ar := acc[m*W : (m+1)*W][:len(fr)]
				for j, v := range ar {
					fr[j] += float32(float32(v) * bs[j])
				}
			}
		}
		for m := 0; m < M; m++ {
			for n := lo; n < hi; n++ {
				y := float32(f[m*W+n-lo] * rq[m].scale)
				if bias != nil {
					y += bias[n]
				}
				out[m*N+n] = y
			}
		}
	})
}

func rowSum(r []int8) int32 {
	var s int32
	for _, v := range r {
		s += int32(v)
	}
	return s
}

// gemmInt8 is gemm for int8 operands with int32 sums, two products per
// 64-bit multiply: the weight columns n, n+1 are packed as w_n + w_{n+1}·2³²
// (once per call, reused by all M rows), so x·p accumulates
// Σx·w_n + 2³²·Σx·w_{n+1} in one int64. Both sums are below 2³¹ in
// magnitude (|x·w| ≤ 2¹⁴, at most maxPackedK terms), so the low half is the
// first sum and the rest, shifted down, the second: exact, like any int32
// summation order. pack is scratch of at least 2·(k1−k0) elements.
func gemmInt8(c []int32, ldc int, a []int8, M, K int, b []int8, lo, hi, k0, k1 int, pack []int64) {
	if k1-k0 > maxPackedK {
		gemm(c, ldc, a, M, K, b, lo, hi, k0, k1)
		return
	}
	L := k1 - k0
	p01, p23 := pack[:L], pack[L:2*L]
	n := lo
	for ; n+4 <= hi; n += 4 {
		b0 := b[(n-lo)*K+k0 : (n-lo)*K+k1]
		b1 := b[(n-lo+1)*K+k0 : (n-lo+1)*K+k1][:L]
		b2 := b[(n-lo+2)*K+k0 : (n-lo+2)*K+k1][:L]
		b3 := b[(n-lo+3)*K+k0 : (n-lo+3)*K+k1][:L]
		for k, y := range b0 {
			p01[k] = int64(y) + int64(b1[k])<<32
			p23[k] = int64(b2[k]) + int64(b3[k])<<32
		}
		m := 0
		for ; m+2 <= M; m += 2 {
			a0 := a[m*K+k0 : m*K+k1][:L]
			a1 := a[(m+1)*K+k0 : (m+1)*K+k1][:L]
			s00, s02, s10, s12 := dotPacked2x2(a0, a1, p01, p23)
			addPacked(c[m*ldc+n-lo:m*ldc+n-lo+4], s00, s02)
			addPacked(c[(m+1)*ldc+n-lo:(m+1)*ldc+n-lo+4], s10, s12)
		}
		for ; m < M; m++ {
			a0 := a[m*K+k0 : m*K+k1][:L]
			var s0, s2 int64
			for k, x := range a0 {
				s0 += int64(x) * p01[k]
				s2 += int64(x) * p23[k]
			}
			addPacked(c[m*ldc+n-lo:m*ldc+n-lo+4], s0, s2)
		}
	}
	if n < hi {
		gemm(c[n-lo:], ldc, a, M, K, b[(n-lo)*K:], n, hi, k0, k1)
	}
}

// dotPacked2x2 is the inner loop of gemmInt8 for two activation rows and
// two packed column pairs. It is kept out of line so that its eight live
// values stay in registers.
//
//go:noinline
func dotPacked2x2(a0, a1 []int8, p01, p23 []int64) (s00, s02, s10, s12 int64) {
	a1, p01, p23 = a1[:len(a0)], p01[:len(a0)], p23[:len(a0)]
	for k, x := range a0 {
		x0, x1 := int64(x), int64(a1[k])
		q01, q23 := p01[k], p23[k]
		s00 += x0 * q01
		s02 += x0 * q23
		s10 += x1 * q01
		s12 += x1 * q23
	}
	return
}

// maxPackedK bounds the terms of a packed sum: 2¹⁶·2¹⁴ < 2³¹.
const maxPackedK = 1 << 16

// addPacked adds the two sums packed in each of s01, s23 to o[0..3].
func addPacked(o []int32, s01, s23 int64) {
	o = o[:4]
	l0, l2 := int32(s01), int32(s23)
	o[0] += l0
	o[1] += int32((s01 - int64(l0)) >> 32)
	o[2] += l2
	o[3] += int32((s23 - int64(l2)) >> 32)
}
