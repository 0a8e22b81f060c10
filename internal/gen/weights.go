package gen

import (
	"encoding/binary"
	"io"
	"math"

	"github.com/qpipe/qpipe/internal/tflite"
)

// weightKind says how a weight's values are drawn.
type weightKind int

const (
	// kindMatrix is a [rows, cols] matrix read with cols as the input
	// (fan-in) dimension: FULLY_CONNECTED weights [out, in] and the
	// embedding table [vocab, dim], which lm_head reads as [vocab, dim].
	kindMatrix weightKind = iota
	// kindNorm is an RMS norm weight vector [cols].
	kindNorm
)

// weight is one generated parameter tensor.
type weight struct {
	// key names the weight by its module path (e.g.
	// "transformer_blocks[0].atten_func.q_projection.weight"); together with
	// the seed it selects the values, so a weight keeps its values when
	// other parts of the Config (such as Layers) change.
	key        string
	kind       weightKind
	rows, cols int
}

func (w weight) numel() int64 {
	if w.kind == kindNorm {
		return int64(w.cols)
	}
	return int64(w.rows) * int64(w.cols)
}

func (w weight) shape() []int32 {
	if w.kind == kindNorm {
		return []int32{int32(w.cols)}
	}
	return []int32{int32(w.rows), int32(w.cols)}
}

// The matrix distribution is a Gaussian scale mixture: a near-Gaussian core
// (the sum of three 16-bit uniforms, Irwin–Hall, bounded at ±3) times a
// scale drawn from 16 further bits: 1 (p = 15/16), 2 (p ≈ 1/17), 4
// (p ≈ 1/273) or 8 (p = 1/4096), normalized to unit variance and then to
// 1/sqrt(fan-in). The core has an excess kurtosis of 3.4 (a Student-t with 6
// degrees of freedom has 3) and tails out to ±20σ, like the heavy-tailed
// weights of trained LLMs. On top, a few input
// channels (columns) of every matrix are outlier features: in them one
// element in 16 (on average) is multiplied by 10–50. The measured effect
// (TestQuantizationSchemesDiffer): int8 per channel loses ~3 % (relative
// L2), int4 block 32 ~11 %, block 256 ~22 %.
var (
	mixScale = [4]float64{1, 2, 4, 8}
	// mixNorm makes the mixture's variance 1.
	mixNorm = func() float64 {
		p3 := 16.0 / 65536
		p2 := 256.0/65536 - p3
		p1 := 4096.0/65536 - 256.0/65536
		p0 := 1 - 4096.0/65536
		v := float64(p0*mixScale[0]*mixScale[0]) + float64(p1*mixScale[1]*mixScale[1]) +
			float64(p2*mixScale[2]*mixScale[2]) + float64(p3*mixScale[3]*mixScale[3])
		return 1 / math.Sqrt(v)
	}()
)

// coreSpan is the integer range of the Irwin–Hall core: 2(a+b+c) − coreSpan
// for 16-bit a, b, c is an odd integer in [−196605, 196605] with standard
// deviation 65536·sqrt(1 − 2^−32).
const coreSpan = 3 * 65535

// genChunk is how many values are produced between writes.
const genChunk = 8192

// outlierChannels returns, for a matrix with cols input channels, the
// per-column multiplier: 1 except for 2 + cols/1024 distinct columns with a
// multiplier in [10, 50). generate applies it to one element in 16 of
// those columns: dense outlier columns would make every row's int8 scale
// hostage to them, which trained models do not show.
func (w weight) outlierChannels(seed uint64) []float32 {
	mul := make([]float32, w.cols)
	for i := range mul {
		mul[i] = 1
	}
	n := 2 + w.cols/1024
	if n > w.cols {
		n = w.cols
	}
	r := newStream(seed, w.key+"#outliers")
	for placed := 0; placed < n; {
		c := r.intn(w.cols)
		if mul[c] != 1 {
			continue
		}
		mul[c] = float32(10 + float64(40*r.uniform()))
		placed++
	}
	return mul
}

// generate produces the weight's values in row-major order, chunk by chunk;
// emit must not keep the slice.
func (w weight) generate(seed uint64, emit func([]float32) error) error {
	n := w.numel()
	buf := make([]float32, min(int64(genChunk), n))
	r := newStream(seed, w.key)
	if w.kind == kindNorm {
		// 1 + 0.05·N(0,1): norm weights of trained models sit near 1.
		const k = float32(0.05 / 65536)
		for i := range buf[:n] {
			u := r.next()
			z := float32(int32(2*(u&0xffff+u>>16&0xffff+u>>32&0xffff)) - coreSpan)
			buf[i] = float32(z*k) + 1
		}
		return emit(buf[:n])
	}
	var tab [4]float32
	sigma := 1 / math.Sqrt(float64(w.cols))
	for i := range tab {
		tab[i] = float32(sigma * mixNorm * mixScale[i] / 65536)
	}
	colMul := w.outlierChannels(seed)
	col := 0
	for done := int64(0); done < n; {
		m := int(min(int64(len(buf)), n-done))
		out := buf[:m]
		for i := range out {
			u := r.next()
			z := float32(int32(2*(u&0xffff+u>>16&0xffff+u>>32&0xffff)) - coreSpan)
			sel := u >> 48
			lvl := b2i(sel < 4096) + b2i(sel < 256) + b2i(sel < 16)
			x := float32(z * tab[lvl])
			if m := colMul[col]; m != 1 && r.next()>>60 == 0 {
				x *= m
			}
			out[i] = x
			col++
			if col == w.cols {
				col = 0
			}
		}
		if err := emit(out); err != nil {
			return err
		}
		done += int64(m)
	}
	return nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// values returns all of the weight's values (tests and the reference
// forward pass; the model itself never holds them).
func (w weight) values(seed uint64) []float32 {
	all := make([]float32, 0, w.numel())
	_ = w.generate(seed, func(v []float32) error { all = append(all, v...); return nil })
	return all
}

// content is the weight as buffer content: little-endian float32 bytes,
// produced again on every WriteTo.
func (w weight) content(seed uint64) tflite.ContentFunc {
	return tflite.ContentFunc{N: 4 * w.numel(), Write: func(dst io.Writer) error {
		var b []byte
		return w.generate(seed, func(v []float32) error {
			if cap(b) < 4*len(v) {
				b = make([]byte, 4*len(v))
			}
			b = b[:4*len(v)]
			for i, x := range v {
				binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
			}
			_, err := dst.Write(b)
			return err
		})
	}}
}
