package tflite

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// Checks of what the tables mean, beyond indices (validate.go) and
// structure (verify_flatbuffer.go): operator codes, quantization parameters
// as the runtime parses them, sparsity as the runtime's verifier checks it,
// variant subtypes, and the subgraphs operators call.

// validateOperatorCode checks the builtin_code / deprecated_builtin_code
// pair (FORMAT.md §4). The runtime takes the larger of the two
// (GetBuiltinCode); a consistent file has either only one of them set, or
// both equal, or deprecated = 127 (PLACEHOLDER_FOR_GREATER_OP_CODES) with
// builtin_code >= 127. Any other pair means different operators to old and
// new runtimes. The builtin_code value itself was checked against the
// schema's enum by the structural verifier.
func (d *decoder) validateOperatorCode(i int, oc *fb.OperatorCodeT) error {
	where := fmt.Sprintf("operator code %d", i)
	dep, code := int32(oc.DeprecatedBuiltinCode), int32(oc.BuiltinCode)
	const placeholder = int32(fb.BuiltinOperatorPLACEHOLDER_FOR_GREATER_OP_CODES)
	switch {
	case dep < 0:
		return d.errorf(where, -1, "deprecated_builtin_code %d is negative", dep)
	case dep == placeholder && code < placeholder:
		return d.errorf(where, -1, "deprecated_builtin_code is 127 (PLACEHOLDER_FOR_GREATER_OP_CODES) but builtin_code is %d (%s), not an extended code >= 127",
			code, builtinName(fb.BuiltinOperator(code)))
	case dep != 0 && dep != placeholder && code != 0 && code != dep:
		return d.errorf(where, -1, "deprecated_builtin_code %d (%s) and builtin_code %d (%s) name different operators",
			dep, builtinName(fb.BuiltinOperator(dep)), code, builtinName(fb.BuiltinOperator(code)))
	}
	eff := BuiltinCode(oc)
	if _, ok := fb.EnumNamesBuiltinOperator[eff]; !ok || int32(eff) == placeholder {
		return d.errorf(where, -1, "builtin code %d is not an operator in qpipe's schema", eff)
	}
	if eff == fb.BuiltinOperatorCUSTOM && oc.CustomCode == "" {
		return d.errorf(where, -1, "CUSTOM operator code without a custom_code name")
	}
	return nil
}

func builtinName(c fb.BuiltinOperator) string {
	if s, ok := fb.EnumNamesBuiltinOperator[c]; ok {
		return s
	}
	return fmt.Sprintf("BUILTIN_%d", int32(c))
}

// validateQuantization checks a tensor's quantization parameters.
//
// Affine (scale/zero_point), as LiteRT's InterpreterBuilder::ParseQuantization
// accepts them: no or empty scale = not quantized; otherwise zero_point must
// be present with as many entries as scale, quantized_dimension must be
// >= 0 and, for a tensor of rank > 0, below the rank, and more than one
// scale must number shape[quantized_dimension]. One relaxation, for files
// written for TFLite Micro, whose loader ignores the dimension: an
// out-of-range quantized_dimension is accepted when the scales cannot be
// misread, i.e. a single scale, or a rank-1 tensor with one scale per
// element (tflm_person_detect's biases: [128] with 128 scales, dimension 3).
//
// Blockwise: the runtime copies the indices without checking them, and the
// kernels then index the scale tensor blindly, so qpipe checks the layout
// the kernels assume (SEMANTICS.md §6.4): scales is another constant tensor
// of the subgraph whose shape is the weight's with the last dimension
// divided by block_size; zero_points is -1 or a constant tensor of that
// same shape; block_size > 0 divides the weight's last dimension.
//
// Multi-axis: scales and zero_points are tensor indices (-1 = no zero
// points), quantized_dimensions lie in [0, rank).
func (d *decoder) validateQuantization(m *Model, si, ti int, t *fb.TensorT, fail func(string, ...any) error) error {
	q := t.Quantization
	if q == nil {
		return nil
	}
	sg := m.Meta.Subgraphs[si]
	nt := len(sg.Tensors)
	rank := len(t.Shape)
	if q.Details != nil {
		switch v := q.Details.Value.(type) {
		case *fb.BlockwiseQuantizationT:
			return d.validateBlockwise(m, si, ti, t, v, fail)
		case *fb.MultiAxisQuantizationT:
			if v.Scales < 0 || int(v.Scales) >= nt || int(v.Scales) == ti {
				return fail("MultiAxisQuantization scales tensor %d out of range (subgraph has %d tensors) or the tensor itself", v.Scales, nt)
			}
			if v.ZeroPoints < -1 || int(v.ZeroPoints) >= nt || int(v.ZeroPoints) == ti {
				return fail("MultiAxisQuantization zero_points tensor %d out of range (subgraph has %d tensors) or the tensor itself", v.ZeroPoints, nt)
			}
			for _, qd := range v.QuantizedDimensions {
				if qd < 0 || int(qd) >= rank {
					return fail("MultiAxisQuantization quantized dimension %d outside the tensor's rank %d", qd, rank)
				}
			}
			if v.BlockSize < 0 {
				return fail("MultiAxisQuantization block_size %d is negative", v.BlockSize)
			}
		}
	}
	ns := len(q.Scale)
	if ns == 0 {
		return nil
	}
	if q.ZeroPoint == nil {
		return fail("quantization has %d scales but no zero_point vector (the runtime refuses it)", ns)
	}
	if len(q.ZeroPoint) != ns {
		return fail("quantization has %d scales but %d zero points: they must be as many", ns, len(q.ZeroPoint))
	}
	qd := q.QuantizedDimension
	if qd < 0 {
		return fail("quantized_dimension %d is negative", qd)
	}
	if rank == 0 {
		return nil // the runtime checks nothing more for a scalar
	}
	if int(qd) >= rank {
		if ns == 1 || rank == 1 && int(t.Shape[0]) == ns {
			return nil // TFLite Micro files: see above
		}
		return fail("quantized_dimension %d outside the tensor's rank %d (shape %v)", qd, rank, t.Shape)
	}
	if ns != 1 && int(t.Shape[qd]) != ns {
		return fail("%d scales, but dimension %d (quantized_dimension) of shape %v has size %d: per-axis quantization needs one scale per index",
			ns, qd, t.Shape, t.Shape[qd])
	}
	return nil
}

func (d *decoder) validateBlockwise(m *Model, si, ti int, t *fb.TensorT, bq *fb.BlockwiseQuantizationT, fail func(string, ...any) error) error {
	sg := m.Meta.Subgraphs[si]
	nt := len(sg.Tensors)
	if bq.BlockSize <= 0 {
		return fail("BlockwiseQuantization block_size %d must be positive", bq.BlockSize)
	}
	rank := len(t.Shape)
	if rank == 0 {
		return fail("BlockwiseQuantization on a scalar: blocks run along the last dimension")
	}
	last := t.Shape[rank-1]
	if last%bq.BlockSize != 0 {
		return fail("BlockwiseQuantization block_size %d does not divide the last dimension of shape %v", bq.BlockSize, t.Shape)
	}
	want := append([]int32(nil), t.Shape...)
	want[rank-1] = last / bq.BlockSize
	check := func(kind string, idx int32) error {
		if idx < 0 || int(idx) >= nt {
			return fail("BlockwiseQuantization %s tensor %d out of range (subgraph has %d tensors)", kind, idx, nt)
		}
		if int(idx) == ti {
			return fail("BlockwiseQuantization %s tensor %d is the quantized tensor itself", kind, idx)
		}
		st := sg.Tensors[idx]
		if !reflect.DeepEqual(st.Shape, want) {
			return fail("BlockwiseQuantization %s tensor %d (%q) has shape %v; a weight of shape %v in blocks of %d needs %v",
				kind, idx, st.Name, st.Shape, t.Shape, bq.BlockSize, want)
		}
		if int(st.Buffer) >= len(m.Buffers) || m.Buffers[st.Buffer].Data == nil || m.Buffers[st.Buffer].Data.Len() == 0 {
			return fail("BlockwiseQuantization %s tensor %d (%q) holds no constant data", kind, idx, st.Name)
		}
		return nil
	}
	if err := check("scales", bq.Scales); err != nil {
		return err
	}
	if bq.ZeroPoints == -1 {
		return nil
	}
	return check("zero_points", bq.ZeroPoints)
}

// validateSparsity checks a sparse tensor's parameters the way the runtime's
// model verifier (LiteRT tflite/core/tools/verifier.cc) does before it
// densifies one, and that its buffer holds exactly the stored elements.
func validateSparsity(m *Model, t *fb.TensorT, fail func(string, ...any) error) error {
	sp := t.Sparsity
	if sp == nil {
		return nil
	}
	if sp.TraversalOrder == nil || sp.DimMetadata == nil {
		return fail("sparsity without traversal_order or dim_metadata")
	}
	rank, total := len(t.Shape), len(sp.TraversalOrder)
	if total < rank || len(sp.DimMetadata) != total {
		return fail("sparsity: traversal_order has %d entries and dim_metadata %d, for a tensor of rank %d (need equal counts >= rank)",
			total, len(sp.DimMetadata), rank)
	}
	blockRank := total - rank
	if blockRank > 0 && len(sp.BlockMap) != blockRank {
		return fail("sparsity: %d block dimensions but block_map has %d entries", blockRank, len(sp.BlockMap))
	}
	// traversal_order: a permutation of the dense dimensions, then one of
	// the block dimensions.
	seen := make([]bool, total)
	for i, o := range sp.TraversalOrder {
		lo, hi := 0, rank
		if i >= rank {
			lo, hi = rank, total
		}
		if int(o) < lo || int(o) >= hi || seen[o] {
			return fail("sparsity: traversal_order %v is not a permutation of [0, %d) followed by one of [%d, %d)", sp.TraversalOrder, rank, rank, total)
		}
		seen[o] = true
	}
	dims := make([]int64, total)
	for i := 0; i < rank; i++ {
		dims[i] = int64(t.Shape[i])
	}
	for i := 0; i < blockRank; i++ {
		bd := sp.TraversalOrder[rank+i]
		size := sp.DimMetadata[rank+i].DenseSize
		if size <= 0 {
			return fail("sparsity: block dimension %d has dense_size %d", rank+i, size)
		}
		dims[bd] = int64(size)
		mapped := sp.BlockMap[i]
		if mapped < 0 || int(mapped) >= rank {
			return fail("sparsity: block_map[%d] = %d outside the tensor's rank %d", i, mapped, rank)
		}
		dims[mapped] /= int64(size)
	}
	count := int64(1)
	for level, dm := range sp.DimMetadata {
		dimSize := dims[sp.TraversalOrder[level]]
		switch dm.Format {
		case fb.DimensionTypeDENSE:
			if int64(dm.DenseSize) != dimSize {
				return fail("sparsity: dense level %d has dense_size %d, the dimension is %d", level, dm.DenseSize, dimSize)
			}
			count *= dimSize
			if count > maxElements {
				return fail("sparsity: element count overflows")
			}
		case fb.DimensionTypeSPARSE_CSR:
			seg, ok1 := sparseIndices(dm.ArraySegments)
			idx, ok2 := sparseIndices(dm.ArrayIndices)
			if !ok1 || !ok2 {
				return fail("sparsity: sparse level %d lacks array_segments or array_indices", level)
			}
			if int64(len(seg)) != count+1 {
				return fail("sparsity: sparse level %d has %d segment bounds, need %d", level, len(seg), count+1)
			}
			for j := range seg {
				if seg[j] < 0 || j > 0 && seg[j] < seg[j-1] {
					return fail("sparsity: sparse level %d array_segments are not non-decreasing and >= 0", level)
				}
			}
			if int64(len(idx)) != seg[len(seg)-1] {
				return fail("sparsity: sparse level %d has %d indices, its last segment bound says %d", level, len(idx), seg[len(seg)-1])
			}
			for _, x := range idx {
				if x < 0 || x >= dimSize {
					return fail("sparsity: sparse level %d index %d outside the dimension size %d", level, x, dimSize)
				}
			}
			count = int64(len(idx))
		}
	}
	if data := m.Buffers[t.Buffer].Data; data != nil && data.Len() > 0 {
		if need, ok := DataSize(t.Type, count); ok && need != data.Len() {
			return fail("sparse tensor stores %d elements (%d bytes of %s) but buffer %d holds %d bytes", count, need, TypeName(t.Type), t.Buffer, data.Len())
		}
	}
	return nil
}

// sparseIndices returns the values of a SparseIndexVector widened to int64.
func sparseIndices(u *fb.SparseIndexVectorT) ([]int64, bool) {
	if u == nil {
		return nil, false
	}
	var out []int64
	switch v := u.Value.(type) {
	case *fb.Int32VectorT:
		if v == nil || v.Values == nil {
			return nil, false
		}
		for _, x := range v.Values {
			out = append(out, int64(x))
		}
	case *fb.Uint16VectorT:
		if v == nil || v.Values == nil {
			return nil, false
		}
		for _, x := range v.Values {
			out = append(out, int64(x))
		}
	case *fb.Uint8VectorT:
		if v == nil || v.Values == nil {
			return nil, false
		}
		for _, x := range v.Values {
			out = append(out, int64(x))
		}
	default:
		return nil, false
	}
	return out, true
}

// validateVariants checks the subtypes of a VARIANT tensor: dimensions >= -1
// (-1 = dynamic), and no shape when has_rank is false (schema.fbs).
func validateVariants(t *fb.TensorT, fail func(string, ...any) error) error {
	for i, v := range t.VariantTensors {
		if v == nil {
			continue
		}
		if !v.HasRank && len(v.Shape) != 0 {
			return fail("variant subtype %d has shape %v but has_rank false (an unranked subtype has no shape)", i, v.Shape)
		}
		for k, dim := range v.Shape {
			if dim < -1 {
				return fail("variant subtype %d shape %v: dimension %d is %d", i, v.Shape, k, dim)
			}
		}
	}
	return nil
}

// subgraphRefs returns the subgraph indices an operator's options name: every
// option field called *_subgraph_index or *_subgraph_indices (WHILE cond and
// body, IF then and else, CALL_ONCE init, STABLEHLO_COMPOSITE decomposition,
// the StableHLO reduce, scatter, sort, while and case bodies, ...), found
// by reflection so that options added to the schema are covered too.
func subgraphRefs(op *fb.OperatorT) (refs []subgraphRef) {
	for _, opts := range []any{optValue(op.BuiltinOptions), optValue(op.BuiltinOptions2)} {
		if opts == nil {
			continue
		}
		rv := reflect.ValueOf(opts)
		if rv.Kind() != reflect.Pointer || rv.IsNil() {
			continue
		}
		rv = rv.Elem()
		rt := rv.Type()
		table := strings.TrimSuffix(rt.Name(), "T") // the schema's name
		for i := 0; i < rt.NumField(); i++ {
			name := rt.Field(i).Name
			field, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",") // the schema's field name
			f := rv.Field(i)
			switch {
			case strings.HasSuffix(name, "SubgraphIndex") && f.Kind() == reflect.Int32:
				refs = append(refs, subgraphRef{table, field, int64(f.Int())})
			case strings.HasSuffix(name, "SubgraphIndices") && f.Kind() == reflect.Slice:
				for k := 0; k < f.Len(); k++ {
					refs = append(refs, subgraphRef{table, fmt.Sprintf("%s[%d]", field, k), f.Index(k).Int()})
				}
			}
		}
	}
	return refs
}

type subgraphRef struct {
	options, field string
	index          int64
}

func optValue(u any) any {
	switch v := u.(type) {
	case *fb.BuiltinOptionsT:
		if v != nil {
			return v.Value
		}
	case *fb.BuiltinOptions2T:
		if v != nil {
			return v.Value
		}
	}
	return nil
}

// validateSubgraphCalls checks every subgraph index in operator options: in
// range, not the operator's own subgraph, and no cycle of calls between
// subgraphs (a body or decomposition that leads back to its caller would
// make the runtime, and any tool walking the calls, recurse forever).
func (d *decoder) validateSubgraphCalls(meta *fb.ModelT) error {
	ns := len(meta.Subgraphs)
	type edge struct {
		to int
		op int
		by string
	}
	calls := make([][]edge, ns)
	for si, sg := range meta.Subgraphs {
		for oi, op := range sg.Operators {
			for _, r := range subgraphRefs(op) {
				where := fmt.Sprintf("subgraph %d operator %d (%s)", si, oi, opName(meta.OperatorCodes[op.OpcodeIndex]))
				if r.index < 0 || r.index >= int64(ns) {
					return d.errorf(where, d.operatorPos(si, oi), "%s.%s is subgraph %d, out of range (model has %d subgraphs)", r.options, r.field, r.index, ns)
				}
				if int(r.index) == si {
					return d.errorf(where, d.operatorPos(si, oi), "%s.%s is subgraph %d, the operator's own subgraph", r.options, r.field, r.index)
				}
				calls[si] = append(calls[si], edge{int(r.index), oi, r.options + "." + r.field})
			}
		}
	}
	// Depth-first search for a cycle, with an explicit stack (a hostile
	// file can chain millions of calls); state 1 = on the current path.
	type frame struct{ sg, next int }
	state := make([]int8, ns)
	for root := 0; root < ns; root++ {
		if state[root] != 0 {
			continue
		}
		stack := []frame{{root, 0}}
		state[root] = 1
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			if top.next == len(calls[top.sg]) {
				state[top.sg] = 2
				stack = stack[:len(stack)-1]
				continue
			}
			e := calls[top.sg][top.next]
			top.next++
			switch state[e.to] {
			case 0:
				state[e.to] = 1
				stack = append(stack, frame{e.to, 0})
			case 1:
				start := 0
				for i, f := range stack {
					if f.sg == e.to {
						start = i
					}
				}
				var chain []string
				for i, f := range stack[start:] {
					if n := len(stack) - start; n > 12 && i == 5 {
						chain = append(chain, fmt.Sprintf("(%d more)", n-10))
					}
					if n := len(stack) - start; n <= 12 || i < 5 || i >= n-5 {
						chain = append(chain, fmt.Sprint(f.sg))
					}
				}
				chain = append(chain, fmt.Sprint(e.to))
				s := top.sg
				return d.errorf(fmt.Sprintf("subgraph %d operator %d (%s)", s, e.op, opName(meta.OperatorCodes[meta.Subgraphs[s].Operators[e.op].OpcodeIndex])),
					d.operatorPos(s, e.op), "%s calls subgraph %d, closing a cycle of subgraph calls %s",
					e.by, e.to, strings.Join(chain, " -> "))
			}
		}
	}
	return nil
}
