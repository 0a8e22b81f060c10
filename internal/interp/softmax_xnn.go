package interp

import "math"

// XNNPACK's float SOFTMAX (the delegate takes SOFTMAX with beta 1), as the
// wasm SIMD build LiteRT.js runs computes it (google/XNNPACK,
// src/operator-run.c xnn_compute_floating_point_softmax;
// src/f32-raddstoreexpminusmax/wasmsimd-rr2-p5.c.in, the u16_acc2 variant
// src/configs/raddstoreexpminusmax-config.c picks for wasm;
// src/operators/softmax-nc.c compute_reciprocal_f32): the row maximum; each
// exp(x−max) by a degree-5 polynomial after a two-constant range
// reduction, in float32 with every product and sum rounded (wasm SIMD has
// no fused multiply-add); their sum in four lanes (lane j takes elements
// j, j+4, … of the row's multiple of four, in order), the lanes folded as
// (l0+l2)+(l1+l3), then a tail of two and one; and each exponential times
// float32(1/sum). Every step is a float32 operation, so the result is the
// same bits on every machine and thread count.

// Constants of the rr2_p5 exponential (the kernel's hexadecimal floats).
const (
	xnnLog2e      = float32(0x1.715476p+0)
	xnnMagicBias  = float32(0x1.8000FEp23)
	xnnMinusLn2Hi = float32(-0x1.62E400p-1)
	xnnMinusLn2Lo = float32(-0x1.7F7D1Cp-20)
	xnnC5         = float32(0x1.0F9F9Cp-7)
	xnnC4         = float32(0x1.573A1Ap-5)
	xnnC3         = float32(0x1.555A80p-3)
	xnnC2         = float32(0x1.FFFDC6p-2)
	xnnC1         = float32(0x1.FFFFF6p-1)
	xnnDenormCut  = float32(-0x1.5D589Ep6)
)

// xnnExpMinusMax is one lane of the kernel: exp(x − mx) in float32.
func xnnExpMinusMax(x, mx float32) float32 {
	vx := x - mx
	if vx < xnnDenormCut || vx != vx {
		// The kernel masks lanes below the cutoff to +0; a NaN lane
		// compares false and keeps its NaN, as here.
		if vx != vx {
			return vx
		}
		return 0
	}
	vn := float32(vx*xnnLog2e) + xnnMagicBias
	vs := math.Float32frombits(math.Float32bits(vn) << 23)
	vn -= xnnMagicBias
	vt := float32(vn*xnnMinusLn2Hi) + vx
	vt = float32(vn*xnnMinusLn2Lo) + vt
	vp := float32(xnnC5*vt) + xnnC4
	vp = float32(vp*vt) + xnnC3
	vp = float32(vp*vt) + xnnC2
	vp = float32(vp*vt) + xnnC1
	vt = vt * vs
	return float32(vt*vp) + vs
}

// xnnSoftmaxRow writes XNNPACK's softmax of row into out (same length).
func xnnSoftmaxRow(row, out []float32) {
	if len(row) == 0 {
		return
	}
	mx := row[0]
	for _, v := range row[1:] {
		mx = max(mx, v)
	}
	var acc [4]float32
	n4 := len(row) &^ 3
	for i := 0; i < n4; i++ {
		e := xnnExpMinusMax(row[i], mx)
		out[i] = e
		acc[i&3] += e
	}
	sum := float32(acc[0]+acc[2]) + float32(acc[1]+acc[3])
	rest := row[n4:]
	if len(rest) >= 2 {
		e0, e1 := xnnExpMinusMax(rest[0], mx), xnnExpMinusMax(rest[1], mx)
		out[n4], out[n4+1] = e0, e1
		sum += e0 + e1
		rest, n4 = rest[2:], n4+2
	}
	if len(rest) == 1 {
		e := xnnExpMinusMax(rest[0], mx)
		out[n4] = e
		sum += e
	}
	scale := 1 / sum
	for i := range out[:len(row)] {
		out[i] *= scale
	}
}
