package interp

import (
	"fmt"

	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// Data movement operators. Each computes an index map (output element →
// input element) and gathers through it, on any element type.

func normAxis(axis, rank int) (int, bool) {
	if axis < 0 {
		axis += rank
	}
	return axis, axis >= 0 && axis < rank
}

func reshapeKernel() *kernel {
	return &kernel{
		check: func(c *opCtx) error {
			return first(c.arity(1, 2, 1), c.typeIn(1, intTypes...), c.typeIn(0, dataTypes...))
		},
		run: func(c *opCtx) error {
			x, err := c.in(0)
			if err != nil {
				return err
			}
			var want []int
			if c.tensorIdx(1) >= 0 {
				if want, err = c.intsIn(1); err != nil {
					return err
				}
				if s, _ := c.opt(1); s != nil && len(s.Shape) == 1 && s.Shape[0] == 0 {
					want = []int{} // scalar
				}
			} else if o, ok := builtinOptions(c.p.op).(*fb.ReshapeOptionsT); ok && o != nil {
				for _, d := range o.NewShape {
					want = append(want, int(d))
				}
			} else {
				for _, d := range c.outMeta(0).Shape {
					want = append(want, int(d))
				}
			}
			shape, err := resolveShape(want, numElements(x.Shape))
			if err != nil {
				return c.errf("reshaping %v: %v", x.Shape, err)
			}
			c.set(0, x.withShape(shape))
			return nil
		},
	}
}

// resolveShape fills in one -1 dimension so that the shape has n elements.
func resolveShape(want []int, n int) ([]int, error) {
	shape := append([]int{}, want...)
	unknown, prod := -1, 1
	for i, d := range shape {
		switch {
		case d == -1 && unknown < 0:
			unknown = i
		case d < 0:
			return nil, fmt.Errorf("new shape %v has a negative dimension", want)
		default:
			prod *= d
			if prod > maxElements {
				return nil, fmt.Errorf("new shape %v is too large", want)
			}
		}
	}
	if unknown >= 0 {
		if prod == 0 || n%prod != 0 {
			return nil, fmt.Errorf("new shape %v does not divide %d elements", want, n)
		}
		shape[unknown] = n / prod
		prod = n
	}
	if prod != n {
		return nil, fmt.Errorf("new shape %v has %d elements, the input %d", want, prod, n)
	}
	return shape, nil
}

func squeezeKernel() *kernel {
	return &kernel{
		check: func(c *opCtx) error {
			return first(c.arity(1, 1, 1), c.typeIn(0, dataTypes...))
		},
		run: func(c *opCtx) error {
			x, err := c.in(0)
			if err != nil {
				return err
			}
			var dims []int32
			if o, ok := builtinOptions(c.p.op).(*fb.SqueezeOptionsT); ok && o != nil {
				dims = o.SqueezeDims
			}
			drop := map[int]bool{}
			for _, d := range dims {
				a, ok := normAxis(int(d), len(x.Shape))
				if !ok || x.Shape[a] != 1 {
					return c.errf("cannot squeeze dimension %d of %v", d, x.Shape)
				}
				drop[a] = true
			}
			var shape []int
			for i, d := range x.Shape {
				if (len(dims) == 0 && d == 1) || drop[i] {
					continue
				}
				shape = append(shape, d)
			}
			c.set(0, x.withShape(shape))
			return nil
		},
	}
}

func expandDimsKernel() *kernel {
	return &kernel{
		check: func(c *opCtx) error {
			return first(c.arity(2, 2, 1), c.typeIn(1, intTypes...), c.typeIn(0, dataTypes...))
		},
		run: func(c *opCtx) error {
			x, err := c.in(0)
			if err != nil {
				return err
			}
			ax, err := c.intsIn(1)
			if err != nil {
				return err
			}
			if len(ax) != 1 {
				return c.errf("axis has %d elements, want 1", len(ax))
			}
			a, ok := normAxis(ax[0], len(x.Shape)+1)
			if !ok {
				return c.errf("axis %d out of range for rank %d", ax[0], len(x.Shape))
			}
			shape := append(append(append([]int{}, x.Shape[:a]...), 1), x.Shape[a:]...)
			c.set(0, x.withShape(shape))
			return nil
		},
	}
}

func transposeKernel() *kernel {
	return &kernel{
		check: func(c *opCtx) error {
			return first(c.arity(2, 2, 1), c.typeIn(1, intTypes...), c.typeIn(0, dataTypes...))
		},
		run: func(c *opCtx) error {
			x, err := c.in(0)
			if err != nil {
				return err
			}
			perm, err := c.intsIn(1)
			if err != nil {
				return err
			}
			r := len(x.Shape)
			if len(perm) != r {
				return c.errf("permutation %v for a rank-%d input", perm, r)
			}
			seen := make([]bool, r)
			for i, p := range perm {
				a, ok := normAxis(p, r)
				if !ok || seen[a] {
					return c.errf("permutation %v is not a permutation of 0..%d", perm, r-1)
				}
				seen[a], perm[i] = true, a
			}
			shape := make([]int, r)
			for i, p := range perm {
				shape[i] = x.Shape[p]
			}
			c.set(0, x.gather(shape, permuteIndex(x.Shape, perm)))
			return nil
		},
	}
}

// permuteIndex maps each element of the transposed tensor to the input.
func permuteIndex(in []int, perm []int) []int {
	st := strides(in)
	out := make([]int, len(perm))
	ost := make([]int, len(perm))
	for i, p := range perm {
		out[i] = in[p]
		ost[i] = st[p]
	}
	return walk(out, ost, 0)
}

// walk lists base + Σ counter[d]·step[d] over every index of shape in
// row-major order.
func walk(shape, step []int, base int) []int {
	n := numElements(shape)
	idx := make([]int, n)
	if n == 0 {
		return idx
	}
	counter := make([]int, len(shape))
	pos := base
	for i := 0; i < n; i++ {
		idx[i] = pos
		for d := len(shape) - 1; d >= 0; d-- {
			counter[d]++
			pos += step[d]
			if counter[d] < shape[d] {
				break
			}
			pos -= step[d] * counter[d]
			counter[d] = 0
		}
	}
	return idx
}

func sliceKernel() *kernel {
	return &kernel{
		check: func(c *opCtx) error {
			if err := c.arity(3, 3, 1); err != nil {
				return err
			}
			for k := 1; k < 3; k++ {
				if err := c.typeIn(k, intTypes...); err != nil {
					return err
				}
			}
			return c.typeIn(0, dataTypes...)
		},
		run: func(c *opCtx) error {
			x, err := c.in(0)
			if err != nil {
				return err
			}
			begin, err := c.intsIn(1)
			if err != nil {
				return err
			}
			size, err := c.intsIn(2)
			if err != nil {
				return err
			}
			r := len(x.Shape)
			if len(begin) != r || len(size) != r {
				return c.errf("begin %v and size %v for a rank-%d input", begin, size, r)
			}
			shape := make([]int, r)
			st := strides(x.Shape)
			base := 0
			for i := range shape {
				b, s := begin[i], size[i]
				if s == -1 {
					s = x.Shape[i] - b
				}
				if b < 0 || s < 0 || b+s > x.Shape[i] {
					return c.errf("slice begin %v size %v out of range for shape %v", begin, size, x.Shape)
				}
				shape[i] = s
				base += b * st[i]
			}
			c.set(0, x.gather(shape, walk(shape, st, base)))
			return nil
		},
	}
}

func stridedSliceKernel() *kernel {
	return &kernel{
		check: func(c *opCtx) error {
			if err := c.arity(3, 4, 1); err != nil {
				return err
			}
			for k := 1; k < 4; k++ {
				if err := c.typeIn(k, intTypes...); err != nil {
					return err
				}
			}
			return c.typeIn(0, dataTypes...)
		},
		run: func(c *opCtx) error {
			x, err := c.in(0)
			if err != nil {
				return err
			}
			begin, err := c.intsIn(1)
			if err != nil {
				return err
			}
			end, err := c.intsIn(2)
			if err != nil {
				return err
			}
			var stride []int
			if c.tensorIdx(3) >= 0 {
				if stride, err = c.intsIn(3); err != nil {
					return err
				}
			} else {
				stride = make([]int, len(begin))
				for i := range stride {
					stride[i] = 1
				}
			}
			o, _ := builtinOptions(c.p.op).(*fb.StridedSliceOptionsT)
			if o == nil {
				o = &fb.StridedSliceOptionsT{}
			}
			shape, final, st, base, err := stridedSlice(x.Shape, begin, end, stride, o)
			if err != nil {
				return c.errf("%v", err)
			}
			out := x.gather(shape, walk(shape, st, base))
			c.set(0, out.withShape(final))
			return nil
		},
	}
}

// stridedSlice resolves a strided slice as TF/TFLite define it: the sparse
// specification (with ellipsis and new axes) becomes one begin/end/stride
// per input dimension. It returns the sliced shape over the input's
// dimensions, the final shape (shrunk axes removed, new axes added), and
// the input step and offset of the walk.
func stridedSlice(in, begin, end, stride []int, o *fb.StridedSliceOptionsT) (shape, final, step []int, base int, err error) {
	n := len(begin)
	if len(end) != n || len(stride) != n {
		return nil, nil, nil, 0, fmt.Errorf("begin %v, end %v and strides %v differ in length", begin, end, stride)
	}
	bit := func(m int32, i int) bool { return i < 32 && m&(1<<i) != 0 }
	ellipsis := -1
	for i := 0; i < n; i++ {
		if bit(o.EllipsisMask, i) {
			if ellipsis >= 0 {
				return nil, nil, nil, 0, fmt.Errorf("more than one ellipsis")
			}
			ellipsis = i
		}
	}
	// Without an ellipsis, the unmentioned trailing dimensions are taken
	// whole, as if an ellipsis ended the spec.
	type dimSpec struct {
		b, e, s             int
		bMask, eMask, shrnk bool
		full                bool
	}
	rank := len(in)
	dense := make([]dimSpec, 0, rank)
	type finalDim struct{ dense int } // -1 new axis, -2 shrunk
	var finals []finalDim
	specN := n
	if ellipsis < 0 {
		ellipsis = n
		specN = n + 1
	}
	for i := 0; i < specN; i++ {
		if i == ellipsis {
			// dims after the ellipsis that consume input dimensions
			after := 0
			for j := i + 1; j < n; j++ {
				if !bit(o.NewAxisMask, j) {
					after++
				}
			}
			for len(dense) < rank-after {
				finals = append(finals, finalDim{len(dense)})
				dense = append(dense, dimSpec{s: 1, full: true})
			}
			continue
		}
		if bit(o.NewAxisMask, i) {
			finals = append(finals, finalDim{-1})
			continue
		}
		if len(dense) >= rank {
			return nil, nil, nil, 0, fmt.Errorf("slice spec indexes more than the input's %d dimensions", rank)
		}
		d := dimSpec{b: begin[i], e: end[i], s: stride[i], bMask: bit(o.BeginMask, i), eMask: bit(o.EndMask, i), shrnk: bit(o.ShrinkAxisMask, i)}
		if d.shrnk {
			finals = append(finals, finalDim{-2})
		} else {
			finals = append(finals, finalDim{len(dense)})
		}
		dense = append(dense, d)
	}
	if len(dense) != rank {
		return nil, nil, nil, 0, fmt.Errorf("slice spec covers %d of the input's %d dimensions", len(dense), rank)
	}
	ist := strides(in)
	shape = make([]int, rank)
	step = make([]int, rank)
	for i, d := range dense {
		dim := in[i]
		if d.full {
			shape[i], step[i] = dim, ist[i]
			continue
		}
		if d.s == 0 {
			return nil, nil, nil, 0, fmt.Errorf("stride 0 in dimension %d", i)
		}
		if d.shrnk {
			b := d.b
			if b < 0 {
				b += dim
			}
			if b < 0 || b >= dim {
				return nil, nil, nil, 0, fmt.Errorf("index %d out of range for dimension %d of size %d", d.b, i, dim)
			}
			shape[i], step[i] = 1, ist[i]
			base += b * ist[i]
			continue
		}
		var b, e int
		lo, hi := 0, dim // clamp range for a positive stride
		if d.s < 0 {
			lo, hi = -1, dim-1
		}
		if d.bMask {
			b = 0
			if d.s < 0 {
				b = dim - 1
			}
		} else {
			b = d.b
			if b < 0 {
				b += dim
			}
			b = min(max(b, lo), hi)
		}
		if d.eMask {
			e = dim
			if d.s < 0 {
				e = -1
			}
		} else {
			e = d.e
			if o.Offset {
				e = b + d.e
			} else if e < 0 {
				e += dim
			}
			e = min(max(e, lo), hi)
		}
		cnt := 0
		if d.s > 0 && e > b {
			cnt = (e - b + d.s - 1) / d.s
		} else if d.s < 0 && e < b {
			cnt = (b - e - d.s - 1) / -d.s
		}
		shape[i], step[i] = cnt, d.s*ist[i]
		if cnt > 0 {
			base += b * ist[i]
		}
	}
	for _, f := range finals {
		switch f.dense {
		case -1:
			final = append(final, 1)
		case -2:
		default:
			final = append(final, shape[f.dense])
		}
	}
	if final == nil {
		final = []int{}
	}
	return shape, final, step, base, nil
}

func concatKernel() *kernel {
	return &kernel{
		check: func(c *opCtx) error {
			if err := c.arity(1, -1, 1); err != nil {
				return err
			}
			for k := range c.p.op.Inputs {
				if err := c.typeIn(k, dataTypes...); err != nil {
					return err
				}
				if c.inType(k) != c.outMeta(0).Type {
					return c.unsupported("input %d is %s, output %s", k, tflite.TypeName(c.inType(k)), tflite.TypeName(c.outMeta(0).Type))
				}
			}
			return c.checkActivation(fusedActivation(c.p.op))
		},
		run: func(c *opCtx) error {
			o, _ := builtinOptions(c.p.op).(*fb.ConcatenationOptionsT)
			axis := 0
			if o != nil {
				axis = int(o.Axis)
			}
			var xs []*Tensor
			for k := range c.p.op.Inputs {
				x, err := c.in(k)
				if err != nil {
					return err
				}
				xs = append(xs, x)
			}
			out, err := concat(xs, axis)
			if err != nil {
				return c.errf("%v", err)
			}
			if out.Type == fb.TensorTypeFLOAT32 {
				activation(fusedActivation(c.p.op), out.F32)
			}
			c.set(0, out)
			return nil
		},
	}
}

// concat joins tensors of one type along axis.
func concat(xs []*Tensor, axis int) (*Tensor, error) {
	first := xs[0]
	r := len(first.Shape)
	a, ok := normAxis(axis, r)
	if !ok {
		return nil, fmt.Errorf("axis %d out of range for rank %d", axis, r)
	}
	shape := append([]int{}, first.Shape...)
	shape[a] = 0
	for i, x := range xs {
		if x.Type != first.Type || len(x.Shape) != r {
			return nil, fmt.Errorf("input %d: %s %v does not concatenate with %s %v", i, tflite.TypeName(x.Type), x.Shape, tflite.TypeName(first.Type), first.Shape)
		}
		for d := range x.Shape {
			if d != a && x.Shape[d] != first.Shape[d] {
				return nil, fmt.Errorf("input %d: shape %v does not concatenate with %v along axis %d", i, x.Shape, first.Shape, a)
			}
		}
		shape[a] += x.Shape[a]
	}
	outer := numElements(shape[:a])
	inner := numElements(shape[a+1:])
	// Stack all inputs into one flat source and build the index map.
	var all *Tensor
	offsets := make([]int, len(xs))
	total := 0
	for i, x := range xs {
		offsets[i] = total
		total += numElements(x.Shape)
	}
	all = NewTensor(first.Type, []int{total})
	for i, x := range xs {
		copyInto(all, offsets[i], x)
	}
	idx := make([]int, 0, numElements(shape))
	for o := 0; o < outer; o++ {
		for i, x := range xs {
			w := x.Shape[a] * inner
			for j := 0; j < w; j++ {
				idx = append(idx, offsets[i]+o*w+j)
			}
		}
	}
	return all.gather(shape, idx), nil
}

// copyInto copies src's elements into dst at element offset off.
func copyInto(dst *Tensor, off int, src *Tensor) {
	switch dst.Type {
	case fb.TensorTypeFLOAT32:
		copy(dst.F32[off:], src.F32)
	case fb.TensorTypeINT32:
		copy(dst.I32[off:], src.I32)
	case fb.TensorTypeINT64:
		copy(dst.I64[off:], src.I64)
	case fb.TensorTypeBOOL:
		copy(dst.Bool[off:], src.Bool)
	case fb.TensorTypeINT8:
		copy(dst.I8[off:], src.I8)
	case fb.TensorTypeINT16:
		copy(dst.I16[off:], src.I16)
	}
}

// splitKernel is SPLIT (axis, value) and SPLIT_V (value, sizes, axis).
func splitKernel(v bool) *kernel {
	val, ax := 1, 0
	if v {
		val, ax = 0, 2
	}
	return &kernel{
		check: func(c *opCtx) error {
			n := 2
			if v {
				n = 3
			}
			return first(c.arity(n, n, -1), c.typeIn(ax, intTypes...), c.typeIn(val, dataTypes...))
		},
		run: func(c *opCtx) error {
			x, err := c.in(val)
			if err != nil {
				return err
			}
			axv, err := c.intsIn(ax)
			if err != nil {
				return err
			}
			if len(axv) != 1 {
				return c.errf("axis has %d elements", len(axv))
			}
			a, ok := normAxis(axv[0], len(x.Shape))
			if !ok {
				return c.errf("axis %d out of range for shape %v", axv[0], x.Shape)
			}
			nOut := len(c.p.op.Outputs)
			sizes := make([]int, nOut)
			if v {
				sv, err := c.intsIn(1)
				if err != nil {
					return err
				}
				if len(sv) != nOut {
					return c.errf("%d sizes for %d outputs", len(sv), nOut)
				}
				copy(sizes, sv)
				unknown, sum := -1, 0
				for i, s := range sizes {
					switch {
					case s == -1 && unknown < 0:
						unknown = i
					case s < 0:
						return c.errf("split sizes %v", sv)
					default:
						sum += s
					}
				}
				if unknown >= 0 && sum <= x.Shape[a] {
					sizes[unknown] = x.Shape[a] - sum
					sum = x.Shape[a]
				}
				if sum != x.Shape[a] {
					return c.errf("split sizes %v do not add up to dimension %d of size %d", sv, a, x.Shape[a])
				}
			} else {
				if x.Shape[a]%nOut != 0 {
					return c.errf("dimension %d of size %d does not split into %d", a, x.Shape[a], nOut)
				}
				for i := range sizes {
					sizes[i] = x.Shape[a] / nOut
				}
			}
			st := strides(x.Shape)
			off := 0
			for k, s := range sizes {
				shape := append([]int{}, x.Shape...)
				shape[a] = s
				c.set(k, x.gather(shape, walk(shape, st, off*st[a])))
				off += s
			}
			return nil
		},
	}
}

func packKernel() *kernel {
	return &kernel{
		check: func(c *opCtx) error {
			if err := c.arity(1, -1, 1); err != nil {
				return err
			}
			for k := range c.p.op.Inputs {
				if err := c.typeIn(k, dataTypes...); err != nil {
					return err
				}
			}
			return nil
		},
		run: func(c *opCtx) error {
			o, _ := builtinOptions(c.p.op).(*fb.PackOptionsT)
			axis := 0
			if o != nil {
				axis = int(o.Axis)
			}
			var xs []*Tensor
			for k := range c.p.op.Inputs {
				x, err := c.in(k)
				if err != nil {
					return err
				}
				if k > 0 && !sameShape(x.Shape, xs[0].Shape) {
					return c.errf("input %d has shape %v, input 0 %v", k, x.Shape, xs[0].Shape)
				}
				xs = append(xs, x)
			}
			a, ok := normAxis(axis, len(xs[0].Shape)+1)
			if !ok {
				return c.errf("axis %d out of range", axis)
			}
			exp := append(append(append([]int{}, xs[0].Shape[:a]...), 1), xs[0].Shape[a:]...)
			for i := range xs {
				xs[i] = xs[i].withShape(exp)
			}
			out, err := concat(xs, a)
			if err != nil {
				return c.errf("%v", err)
			}
			c.set(0, out)
			return nil
		},
	}
}

func unpackKernel() *kernel {
	return &kernel{
		check: func(c *opCtx) error {
			return first(c.arity(1, 1, -1), c.typeIn(0, dataTypes...))
		},
		run: func(c *opCtx) error {
			x, err := c.in(0)
			if err != nil {
				return err
			}
			o, _ := builtinOptions(c.p.op).(*fb.UnpackOptionsT)
			axis := 0
			if o != nil {
				axis = int(o.Axis)
			}
			a, ok := normAxis(axis, len(x.Shape))
			if !ok || x.Shape[a] != len(c.p.op.Outputs) {
				return c.errf("cannot unpack %v along axis %d into %d outputs", x.Shape, axis, len(c.p.op.Outputs))
			}
			st := strides(x.Shape)
			shape := append([]int{}, x.Shape...)
			shape[a] = 1
			final := append(append([]int{}, x.Shape[:a]...), x.Shape[a+1:]...)
			for k := range c.p.op.Outputs {
				c.set(k, x.gather(final, walk(shape, st, k*st[a])))
			}
			return nil
		},
	}
}

func gatherKernel() *kernel {
	return &kernel{
		check: func(c *opCtx) error {
			return first(c.arity(2, 2, 1), c.typeIn(1, intTypes...), c.typeIn(0, dataTypes...))
		},
		run: func(c *opCtx) error {
			x, err := c.in(0)
			if err != nil {
				return err
			}
			ids, err := c.in(1)
			if err != nil {
				return err
			}
			iv, ok := ids.ints()
			if !ok {
				return c.errf("indices are %s", tflite.TypeName(ids.Type))
			}
			o, _ := builtinOptions(c.p.op).(*fb.GatherOptionsT)
			axis, bd := 0, 0
			if o != nil {
				axis, bd = int(o.Axis), int(o.BatchDims)
			}
			a, ok := normAxis(axis, len(x.Shape))
			if bd < 0 {
				bd += len(ids.Shape)
			}
			if !ok || bd < 0 || bd > a || bd > len(ids.Shape) {
				return c.errf("axis %d, batch_dims %d for params %v and indices %v", axis, bd, x.Shape, ids.Shape)
			}
			for i := 0; i < bd; i++ {
				if x.Shape[i] != ids.Shape[i] {
					return c.errf("batch dimension %d: params %v, indices %v", i, x.Shape, ids.Shape)
				}
			}
			batch := numElements(x.Shape[:bd])
			outer := numElements(x.Shape[bd:a])
			dim := x.Shape[a]
			inner := numElements(x.Shape[a+1:])
			nIdx := numElements(ids.Shape[bd:])
			shape := append(append(append([]int{}, x.Shape[:a]...), ids.Shape[bd:]...), x.Shape[a+1:]...)
			if err := c.checkSize(shape); err != nil {
				return err
			}
			idx := make([]int, 0, numElements(shape))
			for b := 0; b < batch; b++ {
				for o := 0; o < outer; o++ {
					for j := 0; j < nIdx; j++ {
						v := iv[b*nIdx+j]
						if v < 0 || v >= dim {
							return c.errf("index %d out of range [0, %d)", v, dim)
						}
						start := ((b*outer+o)*dim + v) * inner
						for k := 0; k < inner; k++ {
							idx = append(idx, start+k)
						}
					}
				}
			}
			c.set(0, x.gather(shape, idx))
			return nil
		},
	}
}

func gatherNDKernel() *kernel {
	return &kernel{
		check: func(c *opCtx) error {
			return first(c.arity(2, 2, 1), c.typeIn(1, intTypes...), c.typeIn(0, dataTypes...))
		},
		run: func(c *opCtx) error {
			x, err := c.in(0)
			if err != nil {
				return err
			}
			ids, err := c.in(1)
			if err != nil {
				return err
			}
			iv, ok := ids.ints()
			if !ok || len(ids.Shape) == 0 {
				return c.errf("indices %s %v", tflite.TypeName(ids.Type), ids.Shape)
			}
			k := ids.Shape[len(ids.Shape)-1]
			if k > len(x.Shape) {
				return c.errf("index depth %d exceeds params rank %d", k, len(x.Shape))
			}
			st := strides(x.Shape)
			inner := numElements(x.Shape[k:])
			n := numElements(ids.Shape[:len(ids.Shape)-1])
			shape := append(append([]int{}, ids.Shape[:len(ids.Shape)-1]...), x.Shape[k:]...)
			if err := c.checkSize(shape); err != nil {
				return err
			}
			idx := make([]int, 0, n*inner)
			for i := 0; i < n; i++ {
				off := 0
				for d := 0; d < k; d++ {
					v := iv[i*k+d]
					if v < 0 || v >= x.Shape[d] {
						return c.errf("index %d out of range [0, %d) in dimension %d", v, x.Shape[d], d)
					}
					off += v * st[d]
				}
				for j := 0; j < inner; j++ {
					idx = append(idx, off+j)
				}
			}
			c.set(0, x.gather(shape, idx))
			return nil
		},
	}
}

func dynamicUpdateSliceKernel() *kernel {
	return &kernel{
		check: func(c *opCtx) error {
			if err := c.arity(3, 3, 1); err != nil {
				return err
			}
			if err := c.typeIn(2, intTypes...); err != nil {
				return err
			}
			if c.inType(0) != c.inType(1) {
				return c.unsupported("operand and update types differ")
			}
			return c.typeIn(0, dataTypes...)
		},
		run: func(c *opCtx) error {
			x, err := c.in(0)
			if err != nil {
				return err
			}
			u, err := c.in(1)
			if err != nil {
				return err
			}
			start, err := c.intsIn(2)
			if err != nil {
				return err
			}
			r := len(x.Shape)
			if u.Type != x.Type || len(u.Shape) != r || len(start) != r {
				return c.errf("operand %v, update %v, start %v", x.Shape, u.Shape, start)
			}
			st := strides(x.Shape)
			base := 0
			for i := range start {
				if u.Shape[i] > x.Shape[i] {
					return c.errf("update %v larger than operand %v", u.Shape, x.Shape)
				}
				s := min(max(start[i], 0), x.Shape[i]-u.Shape[i])
				base += s * st[i]
			}
			n := numElements(x.Shape)
			// out = operand with update's elements scattered in: build the
			// index map into [operand ; update].
			idx := make([]int, n)
			for i := range idx {
				idx[i] = i
			}
			for j, p := range walk(u.Shape, st, base) {
				idx[p] = n + j
			}
			both := NewTensor(x.Type, []int{n + numElements(u.Shape)})
			copyInto(both, 0, x)
			copyInto(both, n, u)
			c.set(0, both.gather(append([]int{}, x.Shape...), idx))
			return nil
		},
	}
}

// padKernel is PAD (pad value 0, or for INT8/INT16 values the output's
// zero point: pad.cc EvalInt) and PADV2 (the scalar input 2, which for
// quantized values must share the output's scale and zero point).
func padKernel(v2 bool) *kernel {
	return &kernel{
		check: func(c *opCtx) error {
			n := 2
			if v2 {
				n = 3
			}
			if err := first(c.arity(2, n, 1), c.typeIn(0, dataTypes...), c.typeIn(1, intTypes...), c.typeOut(0, c.inType(0))); err != nil {
				return err
			}
			if c.tensorIdx(2) >= 0 {
				if err := c.typeIn(2, c.inType(0)); err != nil {
					return err
				}
			}
			if !isIntAct(c.inType(0)) {
				return nil
			}
			out, err := c.outQuant(0)
			if err != nil {
				return err
			}
			if c.tensorIdx(2) >= 0 {
				cv, err := c.inQuant(2)
				if err != nil {
					return err
				}
				if cv != out {
					return c.unsupported("pad value %q (scale %g, zero point %d) differs from output %q (scale %g, zero point %d)", c.meta(2).Name, cv.scale, cv.zp, c.outMeta(0).Name, out.scale, out.zp)
				}
			}
			return nil
		},
		run: func(c *opCtx) error {
			x, err := c.in(0)
			if err != nil {
				return err
			}
			pads, err := c.intsIn(1)
			if err != nil {
				return err
			}
			r := len(x.Shape)
			if len(pads) != 2*r {
				return c.errf("paddings hold %d values for rank %d, want %d", len(pads), r, 2*r)
			}
			pad, err := c.opt(2)
			if err != nil {
				return err
			}
			if pad != nil && (pad.Type != x.Type || pad.Len() != 1) {
				return c.errf("pad value is %s of %d elements, want one %s", tflite.TypeName(pad.Type), pad.Len(), tflite.TypeName(x.Type))
			}
			if pad == nil {
				pad = NewTensor(x.Type, []int{1})
				if isIntAct(x.Type) {
					q, err := c.outQuant(0)
					if err != nil {
						return err
					}
					pad.setInt(0, q.zp)
				}
			}
			shape := make([]int, r)
			for d := range shape {
				if pads[2*d] < 0 || pads[2*d+1] < 0 {
					return c.errf("negative padding %v", pads)
				}
				shape[d] = x.Shape[d] + pads[2*d] + pads[2*d+1]
			}
			if err := c.checkSize(shape); err != nil {
				return err
			}
			n := numElements(x.Shape)
			src := NewTensor(x.Type, []int{n + 1})
			copyInto(src, 0, x)
			copyInto(src, n, pad)
			idx := make([]int, numElements(shape))
			ist, ost := strides(x.Shape), strides(shape)
			for o := range idx {
				in, rem := 0, o
				for d := 0; d < r; d++ {
					k := rem/ost[d] - pads[2*d]
					rem %= ost[d]
					if k < 0 || k >= x.Shape[d] {
						in = n
						break
					}
					in += k * ist[d]
				}
				idx[o] = in
			}
			c.set(0, src.gather(shape, idx))
			return nil
		},
	}
}
