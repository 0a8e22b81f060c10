package interp

import (
	"math"

	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// Reductions (MEAN, SUM, REDUCE_MAX, REDUCE_MIN, REDUCE_PROD) over the axes
// of input 1, keep_dims from ReducerOptions, and SOFTMAX / LOG_SOFTMAX.

type reducer struct {
	init float64
	add  func(acc, x float64) float64
	fin  func(acc float64, n int) float64
}

var reducers = map[fb.BuiltinOperator]reducer{
	fb.BuiltinOperatorMEAN:        {0, func(a, x float64) float64 { return a + x }, func(a float64, n int) float64 { return a / float64(n) }},
	fb.BuiltinOperatorSUM:         {0, func(a, x float64) float64 { return a + x }, func(a float64, n int) float64 { return a }},
	fb.BuiltinOperatorREDUCE_PROD: {1, func(a, x float64) float64 { return a * x }, func(a float64, n int) float64 { return a }},
	fb.BuiltinOperatorREDUCE_MAX: {math.Inf(-1), func(a, x float64) float64 {
		if x != x || a != a {
			return math.NaN()
		}
		return max(a, x)
	}, func(a float64, n int) float64 { return a }},
	fb.BuiltinOperatorREDUCE_MIN: {math.Inf(1), func(a, x float64) float64 {
		if x != x || a != a {
			return math.NaN()
		}
		return min(a, x)
	}, func(a float64, n int) float64 { return a }},
}

// reduceShape is a reduction's output shape over axes (keep_dims from
// ReducerOptions), the output element each input element reduces into, and
// the number of elements reduced into each.
func (c *opCtx) reduceShape(in []int, axes []int) (shape, into []int, n int, err error) {
	keep := false
	if o, ok := builtinOptions(c.p.op).(*fb.ReducerOptionsT); ok && o != nil {
		keep = o.KeepDims
	}
	rank := len(in)
	red := make([]bool, rank)
	for _, a := range axes {
		k, ok := normAxis(a, rank)
		if !ok {
			return nil, nil, 0, c.errf("axis %d out of range for shape %v", a, in)
		}
		red[k] = true
	}
	var kept []int
	n = 1
	for i, d := range in {
		if red[i] {
			n *= d
			kept = append(kept, 1)
			if keep {
				shape = append(shape, 1)
			}
		} else {
			kept = append(kept, d)
			shape = append(shape, d)
		}
	}
	if shape == nil {
		shape = []int{}
	}
	// broadcastIndex(kept, in)[i] is the kept element input element i
	// reduces into (kept is the smaller shape).
	return shape, broadcastIndex(kept, in), n, nil
}

func reduceKernel(code fb.BuiltinOperator) *kernel {
	r := reducers[code]
	return &kernel{
		check: func(c *opCtx) error {
			return first(c.arity(2, 2, 1), c.typeIn(0, f32Only...), c.typeIn(1, intTypes...))
		},
		run: func(c *opCtx) error {
			x, err := c.f32(0)
			if err != nil {
				return err
			}
			axes, err := c.intsIn(1)
			if err != nil {
				return err
			}
			shape, oi, n, err := c.reduceShape(x.Shape, axes)
			if err != nil {
				return err
			}
			out := NewTensor(fb.TensorTypeFLOAT32, shape)
			acc := make([]float64, len(out.F32))
			for i := range acc {
				acc[i] = r.init
			}
			for i, v := range x.F32 {
				acc[oi[i]] = r.add(acc[oi[i]], float64(v))
			}
			for i, a := range acc {
				out.F32[i] = float32(r.fin(a, n))
			}
			c.set(0, out)
			return nil
		},
	}
}

func softmaxKernel(logSoftmax bool) *kernel {
	return &kernel{
		check: func(c *opCtx) error {
			return first(c.arity(1, 1, 1), c.typeIn(0, f32Only...))
		},
		run: func(c *opCtx) error {
			x, err := c.f32(0)
			if err != nil {
				return err
			}
			beta := float64(1)
			if o, ok := builtinOptions(c.p.op).(*fb.SoftmaxOptionsT); ok && o != nil && !logSoftmax {
				beta = float64(o.Beta)
			}
			if len(x.Shape) == 0 {
				return c.errf("softmax of a scalar")
			}
			d := x.Shape[len(x.Shape)-1]
			xnnSoftmax := !logSoftmax && beta == 1
			out := NewTensor(fb.TensorTypeFLOAT32, x.Shape)
			rows := 0
			if d > 0 {
				rows = len(x.F32) / d
			}
			// Rows run on the workers, each row's exponentials kept (in
			// float64) between the sum and the division: the values the
			// row would compute twice.
			ex := make([][]float64, c.sg.in.threads)
			parallel(c.sg.in.threads, rows, max(1, elementGrain/max(d, 1)), func(worker, lo, hi int) {
				if ex[worker] == nil {
					ex[worker] = make([]float64, d)
				}
				e := ex[worker]
				if xnnSoftmax {
					for r := lo * d; r < hi*d; r += d {
						xnnSoftmaxRow(x.F32[r:r+d], out.F32[r:r+d])
					}
					return
				}
				for r := lo * d; r < hi*d; r += d {
					row := x.F32[r : r+d]
					mx := math.Inf(-1)
					for _, v := range row {
						mx = max(mx, float64(v))
					}
					sum := 0.0
					for i, v := range row {
						e[i] = math.Exp(beta * (float64(v) - mx))
						sum += e[i]
					}
					for i, v := range row {
						if logSoftmax {
							out.F32[r+i] = float32(float64(v) - mx - math.Log(sum))
						} else {
							out.F32[r+i] = float32(e[i] / sum)
						}
					}
				}
			})
			c.set(0, out)
			return nil
		},
	}
}
