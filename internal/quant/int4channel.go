package quant

import "math"

// Int4 per-channel (and per-tensor) min-max quantization: what the reference
// quantizer writes for 4-bit CHANNELWISE or TENSORWISE weights read through a
// DEQUANTIZE (its weight-only int4 recipes). The values are plain int4
// (-8..7, packed two per byte by PackInt4) with one float32 scale and one
// zero point per channel, as for int8. Symmetric int4 keeps the full range
// -8..7 (the narrow range applies only from 8 bits on).

// ChannelParamsInt4 is ChannelParamsInt8 for 4 bits:
// symmetric scale = max(|min|, |max|, 1e-9)/7, zero point 0; asymmetric
// bmin = min(min, 0), bmax = max(max, 0), scale = max(bmax−bmin, 1e-9)/15,
// zero point = rint(−8 − bmin/scale). Every step is float32.
func ChannelParamsInt4(scales []float32, zeroPoints []int64, src []float32, shape []int, axis int, symmetric bool) error {
	l := channelLayout("ChannelParamsInt4", len(src), shape, axis)
	if len(scales) != l.channels || len(zeroPoints) != l.channels {
		panicf("ChannelParamsInt4: %d channels, len(scales) = %d, len(zeroPoints) = %d",
			l.channels, len(scales), len(zeroPoints))
	}
	lo, hi := channelExtrema(src, l, symmetric)
	for c := range scales {
		if symmetric {
			if uint32(hi[c]) >= f32Inf {
				return CheckFinite(src)
			}
			scales[c], zeroPoints[c] = max(math.Float32frombits(uint32(hi[c])), scaleFloor)/7, 0
			continue
		}
		mn, mx := fromKey(lo[c]), fromKey(hi[c])
		if math.Float32bits(mn)&f32AbsMask >= f32Inf || math.Float32bits(mx)&f32AbsMask >= f32Inf {
			return CheckFinite(src)
		}
		bmin, bmax := min(mn, 0), max(mx, 0)
		scales[c] = max(bmax-bmin, scaleFloor) / 15
		zeroPoints[c] = int64(math.RoundToEven(float64(float32(-8) - bmin/scales[c])))
	}
	return nil
}

// QuantizeChannelsInt4 writes q = clip(rint(x/scale + zp), -8, 7) per
// channel (layout as in ChannelParamsInt4), one value per int8; PackInt4
// packs them. src should be finite.
func QuantizeChannelsInt4(dst []int8, src []float32, shape []int, axis int, scales []float32, zeroPoints []int64) {
	l := channelLayout("QuantizeChannelsInt4", len(src), shape, axis)
	if len(dst) != len(src) || len(scales) != l.channels || len(zeroPoints) != l.channels {
		panicf("QuantizeChannelsInt4: len(dst) = %d, len(src) = %d, %d channels, len(scales) = %d, len(zeroPoints) = %d",
			len(dst), len(src), l.channels, len(scales), len(zeroPoints))
	}
	parallelFor(len(src), 1, func(a, b int) {
		l.forRuns(a, b, func(a, b, c int) {
			s, zp := scales[c], float32(zeroPoints[c])
			for i, x := range src[a:b] {
				dst[a+i] = quantizeExact(x, s, zp, -8, 7)
			}
		})
	})
}
