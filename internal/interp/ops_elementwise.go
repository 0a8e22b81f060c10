package interp

import (
	"math"

	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// Element-wise operators: binary arithmetic with numpy broadcasting and a
// fused activation, comparisons, SELECT, unary math, CAST.

var (
	f32Only = []fb.TensorType{fb.TensorTypeFLOAT32}
	numeric = []fb.TensorType{fb.TensorTypeFLOAT32, fb.TensorTypeINT32, fb.TensorTypeINT64}
	anyType = []fb.TensorType{fb.TensorTypeFLOAT32, fb.TensorTypeINT32, fb.TensorTypeINT64, fb.TensorTypeBOOL}
	// dataTypes are what the data movement ops take: any type, quantized
	// INT8/INT16 activations included (their integers move unchanged).
	dataTypes = append(append([]fb.TensorType{}, anyType...), fb.TensorTypeINT8, fb.TensorTypeINT16)
	intTypes  = []fb.TensorType{fb.TensorTypeINT32, fb.TensorTypeINT64}
	boolTypes = []fb.TensorType{fb.TensorTypeBOOL}
)

// arith is a binary arithmetic operator on every numeric type.
type arith struct {
	f   func(a, b float32) float32
	i32 func(a, b int32) (int32, bool) // false: division by zero
	i64 func(a, b int64) (int64, bool)
}

var arithOps = map[fb.BuiltinOperator]arith{
	fb.BuiltinOperatorADD: {
		f:   func(a, b float32) float32 { return a + b },
		i32: func(a, b int32) (int32, bool) { return a + b, true },
		i64: func(a, b int64) (int64, bool) { return a + b, true }},
	fb.BuiltinOperatorSUB: {
		f:   func(a, b float32) float32 { return a - b },
		i32: func(a, b int32) (int32, bool) { return a - b, true },
		i64: func(a, b int64) (int64, bool) { return a - b, true }},
	fb.BuiltinOperatorMUL: {
		f:   func(a, b float32) float32 { return a * b },
		i32: func(a, b int32) (int32, bool) { return a * b, true },
		i64: func(a, b int64) (int64, bool) { return a * b, true }},
	fb.BuiltinOperatorDIV: {
		f: func(a, b float32) float32 { return a / b },
		i32: func(a, b int32) (int32, bool) {
			if b == 0 {
				return 0, false
			}
			return a / b, true
		}},
	fb.BuiltinOperatorFLOOR_DIV: {
		f: func(a, b float32) float32 { return float32(math.Floor(float64(a / b))) },
		i32: func(a, b int32) (int32, bool) {
			if b == 0 {
				return 0, false
			}
			q := a / b
			if (a%b != 0) && ((a < 0) != (b < 0)) {
				q--
			}
			return q, true
		}},
	fb.BuiltinOperatorMAXIMUM: {
		f:   func(a, b float32) float32 { return fmax(a, b) },
		i32: func(a, b int32) (int32, bool) { return max(a, b), true },
		i64: func(a, b int64) (int64, bool) { return max(a, b), true }},
	fb.BuiltinOperatorMINIMUM: {
		f:   func(a, b float32) float32 { return fmin(a, b) },
		i32: func(a, b int32) (int32, bool) { return min(a, b), true },
		i64: func(a, b int64) (int64, bool) { return min(a, b), true }},
	fb.BuiltinOperatorSQUARED_DIFFERENCE: {
		f:   func(a, b float32) float32 { d := a - b; return d * d },
		i32: func(a, b int32) (int32, bool) { d := a - b; return d * d, true }},
	fb.BuiltinOperatorPOW: {
		f: func(a, b float32) float32 { return float32(math.Pow(float64(a), float64(b))) },
		i32: func(a, b int32) (int32, bool) {
			if b < 0 {
				return 0, false
			}
			r := int32(1)
			for ; b > 0; b-- {
				r *= a
			}
			return r, true
		}},
}

// fmax and fmin propagate NaN as std::max/min with NaN operands rarely do;
// the runtime's kernels return NaN for a NaN input.
func fmax(a, b float32) float32 {
	if a != a || b != b {
		return float32(math.NaN())
	}
	return max(a, b)
}

func fmin(a, b float32) float32 {
	if a != a || b != b {
		return float32(math.NaN())
	}
	return min(a, b)
}

// fusedActivation returns the op's fused activation (NONE when the op has
// no options).
func fusedActivation(op *fb.OperatorT) fb.ActivationFunctionType {
	if op.BuiltinOptions == nil {
		return fb.ActivationFunctionTypeNONE
	}
	switch o := op.BuiltinOptions.Value.(type) {
	case *fb.AddOptionsT:
		return o.FusedActivationFunction
	case *fb.SubOptionsT:
		return o.FusedActivationFunction
	case *fb.MulOptionsT:
		return o.FusedActivationFunction
	case *fb.DivOptionsT:
		return o.FusedActivationFunction
	case *fb.ConcatenationOptionsT:
		return o.FusedActivationFunction
	}
	return fb.ActivationFunctionTypeNONE
}

func arithKernel(code fb.BuiltinOperator) *kernel {
	a := arithOps[code]
	return &kernel{
		check: func(c *opCtx) error {
			if err := c.arity(2, 2, 1); err != nil {
				return err
			}
			types := []fb.TensorType{fb.TensorTypeFLOAT32}
			if a.i32 != nil {
				types = append(types, fb.TensorTypeINT32)
			}
			if a.i64 != nil {
				types = append(types, fb.TensorTypeINT64)
			}
			for k := 0; k < 2; k++ {
				if err := c.typeIn(k, types...); err != nil {
					return err
				}
			}
			if c.inType(0) != c.inType(1) || c.outMeta(0).Type != c.inType(0) {
				return c.unsupported("mixed types %s, %s -> %s", tflite.TypeName(c.inType(0)), tflite.TypeName(c.inType(1)), tflite.TypeName(c.outMeta(0).Type))
			}
			act := fusedActivation(c.p.op)
			if act != fb.ActivationFunctionTypeNONE && c.inType(0) != fb.TensorTypeFLOAT32 {
				return c.unsupported("fused activation on %s", tflite.TypeName(c.inType(0)))
			}
			return c.checkActivation(act)
		},
		run: func(c *opCtx) error {
			x, err := c.in(0)
			if err != nil {
				return err
			}
			y, err := c.in(1)
			if err != nil {
				return err
			}
			if x.Type != y.Type {
				return c.errf("inputs are %s and %s", tflite.TypeName(x.Type), tflite.TypeName(y.Type))
			}
			shape, ok := broadcastShape(x.Shape, y.Shape)
			if !ok {
				return c.errf("shapes %v and %v do not broadcast", x.Shape, y.Shape)
			}
			if err := c.checkSize(shape); err != nil {
				return err
			}
			out := NewTensor(x.Type, shape)
			xr, xn, xok := repeatIndex(x.Shape, shape)
			yr, yn, yok := repeatIndex(y.Shape, shape)
			if x.Type == fb.TensorTypeFLOAT32 && xok && yok {
				// The common broadcasts (same shape, a scalar, a row of
				// weights, a value per row): element i reads x[(i/xr) mod
				// xn], y likewise. Chunks of elements run on the workers;
				// each element is computed alone, so the bytes do not
				// depend on them.
				act := fusedActivation(c.p.op)
				xs, ys, os := x.F32, y.F32, out.F32
				parallel(c.sg.in.threads, len(os), elementGrain, func(_, lo, hi int) {
					xc, yc := newRepeat(lo, xr, xn), newRepeat(lo, yr, yn)
					for i := lo; i < hi; i++ {
						os[i] = a.f(xs[xc.i], ys[yc.i])
						xc.next()
						yc.next()
					}
					activation(act, os[lo:hi])
				})
				c.set(0, out)
				return nil
			}
			ix, iy := broadcastIndex(x.Shape, shape), broadcastIndex(y.Shape, shape)
			switch x.Type {
			case fb.TensorTypeFLOAT32:
				for i := range out.F32 {
					out.F32[i] = a.f(x.F32[ix[i]], y.F32[iy[i]])
				}
				activation(fusedActivation(c.p.op), out.F32)
			case fb.TensorTypeINT32:
				for i := range out.I32 {
					v, ok := a.i32(x.I32[ix[i]], y.I32[iy[i]])
					if !ok {
						return c.errf("integer division by zero or negative exponent at element %d", i)
					}
					out.I32[i] = v
				}
			case fb.TensorTypeINT64:
				for i := range out.I64 {
					v, ok := a.i64(x.I64[ix[i]], y.I64[iy[i]])
					if !ok {
						return c.errf("integer division by zero at element %d", i)
					}
					out.I64[i] = v
				}
			}
			c.set(0, out)
			return nil
		},
	}
}

// compareKernel is LESS, GREATER, EQUAL, ...: broadcasting, BOOL output.
func compareKernel(cmp func(d int) bool, boolOK bool) *kernel {
	return &kernel{
		check: func(c *opCtx) error {
			if err := c.arity(2, 2, 1); err != nil {
				return err
			}
			types := numeric
			if boolOK {
				types = anyType
			}
			for k := 0; k < 2; k++ {
				if err := c.typeIn(k, types...); err != nil {
					return err
				}
			}
			if c.inType(0) != c.inType(1) {
				return c.unsupported("mixed input types")
			}
			return c.typeOut(0, fb.TensorTypeBOOL)
		},
		run: func(c *opCtx) error {
			x, y, shape, ix, iy, err := c.broadcast2()
			if err != nil {
				return err
			}
			out := NewTensor(fb.TensorTypeBOOL, shape)
			for i := range out.Bool {
				var d int
				switch x.Type {
				case fb.TensorTypeFLOAT32:
					a, b := x.F32[ix[i]], y.F32[iy[i]]
					d = cmp3(a < b, a > b, a == b)
				case fb.TensorTypeINT32:
					a, b := x.I32[ix[i]], y.I32[iy[i]]
					d = cmp3(a < b, a > b, a == b)
				case fb.TensorTypeINT64:
					a, b := x.I64[ix[i]], y.I64[iy[i]]
					d = cmp3(a < b, a > b, a == b)
				case fb.TensorTypeBOOL:
					a, b := x.Bool[ix[i]], y.Bool[iy[i]]
					d = cmp3(!a && b, a && !b, a == b)
				}
				out.Bool[i] = cmp(d)
			}
			c.set(0, out)
			return nil
		},
	}
}

// cmp3 encodes a comparison: -1 less, 1 greater, 0 equal, 2 unordered (NaN).
func cmp3(lt, gt, eq bool) int {
	switch {
	case lt:
		return -1
	case gt:
		return 1
	case eq:
		return 0
	}
	return 2
}

func (c *opCtx) broadcast2() (x, y *Tensor, shape, ix, iy []int, err error) {
	if x, err = c.in(0); err != nil {
		return
	}
	if y, err = c.in(1); err != nil {
		return
	}
	if x.Type != y.Type {
		err = c.errf("inputs are %s and %s", tflite.TypeName(x.Type), tflite.TypeName(y.Type))
		return
	}
	var ok bool
	if shape, ok = broadcastShape(x.Shape, y.Shape); !ok {
		err = c.errf("shapes %v and %v do not broadcast", x.Shape, y.Shape)
		return
	}
	if err = c.checkSize(shape); err != nil {
		return
	}
	return x, y, shape, broadcastIndex(x.Shape, shape), broadcastIndex(y.Shape, shape), nil
}

func logicalKernel(f func(a, b bool) bool) *kernel {
	return &kernel{
		check: func(c *opCtx) error {
			return first(c.arity(2, 2, 1), c.typeIn(0, fb.TensorTypeBOOL), c.typeIn(1, fb.TensorTypeBOOL))
		},
		run: func(c *opCtx) error {
			x, y, shape, ix, iy, err := c.broadcast2()
			if err != nil {
				return err
			}
			out := NewTensor(fb.TensorTypeBOOL, shape)
			for i := range out.Bool {
				out.Bool[i] = f(x.Bool[ix[i]], y.Bool[iy[i]])
			}
			c.set(0, out)
			return nil
		},
	}
}

// selectKernel is SELECT (v1: condition of the same shape, or a vector
// selecting along the first dimension) and SELECT_V2 (broadcasting).
func selectKernel(v2 bool) *kernel {
	return &kernel{
		check: func(c *opCtx) error {
			if err := c.arity(3, 3, 1); err != nil {
				return err
			}
			if err := c.typeIn(0, fb.TensorTypeBOOL); err != nil {
				return err
			}
			if c.inType(1) != c.inType(2) {
				return c.unsupported("value inputs of different types")
			}
			return c.typeIn(1, dataTypes...)
		},
		run: func(c *opCtx) error {
			cond, err := c.in(0)
			if err != nil {
				return err
			}
			x, err := c.in(1)
			if err != nil {
				return err
			}
			y, err := c.in(2)
			if err != nil {
				return err
			}
			if cond.Type != fb.TensorTypeBOOL || x.Type != y.Type {
				return c.errf("condition %s, values %s and %s", tflite.TypeName(cond.Type), tflite.TypeName(x.Type), tflite.TypeName(y.Type))
			}
			var shape []int
			var ic, ix, iy []int
			if v2 {
				s1, ok := broadcastShape(cond.Shape, x.Shape)
				if ok {
					shape, ok = broadcastShape(s1, y.Shape)
				}
				if !ok {
					return c.errf("shapes %v, %v, %v do not broadcast", cond.Shape, x.Shape, y.Shape)
				}
				if err := c.checkSize(shape); err != nil {
					return err
				}
				ic, ix, iy = broadcastIndex(cond.Shape, shape), broadcastIndex(x.Shape, shape), broadcastIndex(y.Shape, shape)
			} else {
				if !sameShape(x.Shape, y.Shape) {
					return c.errf("value shapes %v and %v differ", x.Shape, y.Shape)
				}
				shape = x.Shape
				n := numElements(shape)
				ix = broadcastIndex(shape, shape)
				iy = ix
				switch {
				case sameShape(cond.Shape, shape):
					ic = ix
				case len(cond.Shape) <= 1 && len(shape) >= 1 && numElements(cond.Shape) == shape[0]:
					ic = make([]int, n)
					inner := n / max(shape[0], 1)
					for i := range ic {
						ic[i] = i / max(inner, 1)
					}
				case numElements(cond.Shape) == 1:
					ic = make([]int, n)
				default:
					return c.errf("condition shape %v does not fit values %v", cond.Shape, shape)
				}
			}
			xs := x.gather(shape, ix)
			ys := y.gather(shape, iy)
			out := xs
			for i, j := range ic {
				if !cond.Bool[j] {
					switch out.Type {
					case fb.TensorTypeFLOAT32:
						out.F32[i] = ys.F32[i]
					case fb.TensorTypeINT32:
						out.I32[i] = ys.I32[i]
					case fb.TensorTypeINT64:
						out.I64[i] = ys.I64[i]
					case fb.TensorTypeBOOL:
						out.Bool[i] = ys.Bool[i]
					case fb.TensorTypeINT8:
						out.I8[i] = ys.I8[i]
					case fb.TensorTypeINT16:
						out.I16[i] = ys.I16[i]
					}
				}
			}
			c.set(0, out)
			return nil
		},
	}
}

// unaryKernel is a float32 element-wise function computed in float64 and
// rounded once.
func unaryKernel(f func(x float64) float64) *kernel {
	return &kernel{
		check: func(c *opCtx) error {
			return first(c.arity(1, 1, 1), c.typeIn(0, f32Only...), c.typeOut(0, f32Only...))
		},
		run: func(c *opCtx) error {
			x, err := c.f32(0)
			if err != nil {
				return err
			}
			out := NewTensor(fb.TensorTypeFLOAT32, x.Shape)
			parallel(c.sg.in.threads, len(x.F32), elementGrain, func(_, lo, hi int) {
				o := out.F32[lo:hi]
				for i, v := range x.F32[lo:hi][:len(o)] {
					o[i] = float32(f(float64(v)))
				}
			})
			c.set(0, out)
			return nil
		},
	}
}

// elementGrain is how many elements a worker takes at a time in the
// element-wise ops (smaller tensors run on one).
const elementGrain = 1 << 15

// repeatIndex reports whether broadcasting in to out reads element
// (i/r) mod n of in for element i of out: in (aligned right) is out's
// dimensions over a contiguous span, 1 after it (r is the product of out's
// dimensions there) and 1 or missing before it.
func repeatIndex(in, out []int) (r, n int, ok bool) {
	if len(in) > len(out) {
		return 0, 0, false
	}
	out = out[len(out)-len(in):]
	r, n = 1, 1
	j := len(in) - 1
	for ; j >= 0 && in[j] == 1; j-- {
		r *= out[j]
	}
	for ; j >= 0 && in[j] != 1; j-- {
		if in[j] != out[j] {
			return 0, 0, false
		}
		n *= in[j]
	}
	for ; j >= 0; j-- {
		if in[j] != 1 {
			return 0, 0, false
		}
	}
	return r, n, r > 0 && n > 0
}

// repeat walks (i/r) mod n as i counts up.
type repeat struct{ i, k, r, n int }

func newRepeat(i, r, n int) repeat { return repeat{i: (i / r) % n, k: i % r, r: r, n: n} }

func (p *repeat) next() {
	if p.k++; p.k == p.r {
		p.k = 0
		if p.i++; p.i == p.n {
			p.i = 0
		}
	}
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

func geluKernel() *kernel {
	k := unaryKernel(nil)
	check := k.check
	k.check = func(c *opCtx) error {
		if c.p.op.BuiltinOptions != nil {
			if _, ok := c.p.op.BuiltinOptions.Value.(*fb.GeluOptionsT); !ok {
				return c.unsupported("options of type %T", c.p.op.BuiltinOptions.Value)
			}
		}
		return check(c)
	}
	k.run = func(c *opCtx) error {
		x, err := c.f32(0)
		if err != nil {
			return err
		}
		approx := false
		if c.p.op.BuiltinOptions != nil {
			approx = c.p.op.BuiltinOptions.Value.(*fb.GeluOptionsT).Approximate
		}
		out := NewTensor(fb.TensorTypeFLOAT32, x.Shape)
		for i, v := range x.F32 {
			out.F32[i] = float32(gelu(float64(v), approx))
		}
		c.set(0, out)
		return nil
	}
	return k
}

// gelu is x·Φ(x), or its tanh approximation.
func gelu(x float64, approximate bool) float64 {
	if approximate {
		return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+float64(0.044715*x*x*x))))
	}
	return 0.5 * x * (1 + math.Erf(x/math.Sqrt2))
}

// intUnaryKernel covers ops valid on float32 and int32 (NEG, ABS, SQUARE).
func numUnaryKernel(f func(float64) float64, fi func(int32) int32) *kernel {
	return &kernel{
		check: func(c *opCtx) error {
			return first(c.arity(1, 1, 1), c.typeIn(0, fb.TensorTypeFLOAT32, fb.TensorTypeINT32), c.typeOut(0, c.inType(0)))
		},
		run: func(c *opCtx) error {
			x, err := c.in(0)
			if err != nil {
				return err
			}
			out := NewTensor(x.Type, x.Shape)
			switch x.Type {
			case fb.TensorTypeFLOAT32:
				for i, v := range x.F32 {
					out.F32[i] = float32(f(float64(v)))
				}
			case fb.TensorTypeINT32:
				for i, v := range x.I32 {
					out.I32[i] = fi(v)
				}
			default:
				return c.errf("input is %s", tflite.TypeName(x.Type))
			}
			c.set(0, out)
			return nil
		},
	}
}

func logicalNotKernel() *kernel {
	return &kernel{
		check: func(c *opCtx) error {
			return first(c.arity(1, 1, 1), c.typeIn(0, boolTypes...))
		},
		run: func(c *opCtx) error {
			x, err := c.in(0)
			if err != nil {
				return err
			}
			out := NewTensor(fb.TensorTypeBOOL, x.Shape)
			for i, v := range x.Bool {
				out.Bool[i] = !v
			}
			c.set(0, out)
			return nil
		},
	}
}

// castKernel converts between FLOAT32, INT32, INT64 and BOOL as the
// runtime's static_cast does (float to int truncates toward zero).
func castKernel() *kernel {
	return &kernel{
		check: func(c *opCtx) error {
			return first(c.arity(1, 1, 1), c.typeIn(0, anyType...), c.typeOut(0, anyType...))
		},
		run: func(c *opCtx) error {
			x, err := c.in(0)
			if err != nil {
				return err
			}
			n := numElements(x.Shape)
			f := make([]float64, n)
			switch x.Type {
			case fb.TensorTypeFLOAT32:
				for i, v := range x.F32 {
					f[i] = float64(v)
				}
			case fb.TensorTypeINT32:
				for i, v := range x.I32 {
					f[i] = float64(v)
				}
			case fb.TensorTypeINT64:
				out := NewTensor(c.outMeta(0).Type, x.Shape)
				for i, v := range x.I64 {
					switch out.Type {
					case fb.TensorTypeFLOAT32:
						out.F32[i] = float32(v)
					case fb.TensorTypeINT32:
						out.I32[i] = int32(v)
					case fb.TensorTypeINT64:
						out.I64[i] = v
					case fb.TensorTypeBOOL:
						out.Bool[i] = v != 0
					}
				}
				c.set(0, out)
				return nil
			case fb.TensorTypeBOOL:
				for i, v := range x.Bool {
					if v {
						f[i] = 1
					}
				}
			}
			out := NewTensor(c.outMeta(0).Type, x.Shape)
			for i, v := range f {
				switch out.Type {
				case fb.TensorTypeFLOAT32:
					out.F32[i] = float32(v)
				case fb.TensorTypeINT32:
					out.I32[i] = int32(clampInt(math.Trunc(v), math.MinInt32, math.MaxInt32))
				case fb.TensorTypeINT64:
					out.I64[i] = int64(clampInt(math.Trunc(v), math.MinInt64, math.MaxInt64))
				case fb.TensorTypeBOOL:
					out.Bool[i] = v != 0
				}
			}
			c.set(0, out)
			return nil
		},
	}
}

func clampInt(v, lo, hi float64) float64 {
	if v != v {
		return 0
	}
	return min(max(v, lo), hi)
}
