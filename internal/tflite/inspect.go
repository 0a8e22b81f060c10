package tflite

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// SummarySchema is the version of the Summary JSON schema. It changes only
// when a field is removed or changes meaning; fields may be added.
const SummarySchema = 1

// Summary describes a model for `qpipe inspect --json`. Its JSON form is a
// stable schema (version SummarySchema):
//
//	{
//	  "schema": 1,
//	  "model": string,              Model.Name (the path it was read from)
//	  "file_bytes": int,            size of the file read; 0 when unknown
//	  "version": int,               Model.version (3)
//	  "description": string,        omitted when absent
//	  "layout": "inline"|"offset",  where buffer bytes are stored
//	  "buffers": int,               entries in Model.buffers
//	  "data_bytes": int,            bytes of buffer data, shared buffers once
//	  "subgraphs": [{
//	    "index": int, "name": string (omitted when absent),
//	    "num_tensors": int, "num_operators": int,
//	    "inputs": [int], "outputs": [int],   tensor indices
//	    "tensors": [Tensor]
//	  }],
//	  "signatures": [{
//	    "key": string, "subgraph": int,
//	    "inputs": [SigTensor], "outputs": [SigTensor]
//	  }],
//	  "operators": [{"op": string, "version": int, "count": int}],
//	      one entry per operator code in use, most used first; "op" is the
//	      builtin name (FULLY_CONNECTED) or, for CUSTOM, the custom code
//	  "weights_by_type": [{"type": string, "tensors": int, "buffers": int, "bytes": int}],
//	      constant buffers (metadata excluded) by the type of the first
//	      tensor that uses them, largest first; a buffer counts once
//	  "weight_bytes": int,          sum of weights_by_type bytes
//	  "metadata": [{"name": string, "buffer": int, "bytes": int}]
//	}
//
//	Tensor: {
//	  "index": int, "name": string (omitted when absent),
//	  "shape": [int],               [] for a scalar
//	  "shape_signature": [int],     omitted when absent; -1 = dynamic
//	  "type": string,               FLOAT32, INT8, INT4, ... or TYPE_<n>
//	  "quantization": Quantization,
//	  "bytes": int,                 constant: its buffer's length; otherwise
//	                                shape × type size (0 for STRING etc.)
//	  "constant": bool,             the buffer holds data
//	  "buffer": int,                index into Model.buffers (0 = none)
//	  "variable": true, "sparse": true   present only when set
//	}
//
//	Quantization: {
//	  "kind": "none" | "per-tensor" | "per-channel" | "blockwise" | "multi-axis" | "custom",
//	  "scale": float, "zero_point": int      per-tensor (scale omitted if not finite)
//	  "axis": int, "count": int              per-channel: quantized_dimension, number of scales
//	  "block_size": int, "scale_tensor": int, "zero_point_tensor": int
//	                                         blockwise / multi-axis (zero_point_tensor -1 = none)
//	}
//
//	SigTensor: {"name": string, "tensor": int, "shape": [int],
//	            "shape_signature": [int] (omitted when absent), "type": string}
//
// Arrays are never null: an empty list prints as [].
type Summary struct {
	Schema        int                `json:"schema"`
	Model         string             `json:"model"`
	FileBytes     int64              `json:"file_bytes"`
	Version       uint32             `json:"version"`
	Description   string             `json:"description,omitempty"`
	Layout        string             `json:"layout"`
	Buffers       int                `json:"buffers"`
	DataBytes     int64              `json:"data_bytes"`
	Subgraphs     []SubgraphSummary  `json:"subgraphs"`
	Signatures    []SignatureSummary `json:"signatures"`
	Operators     []OpCount          `json:"operators"`
	WeightsByType []TypeBytes        `json:"weights_by_type"`
	WeightBytes   int64              `json:"weight_bytes"`
	Metadata      []MetadataSummary  `json:"metadata"`
}

// SubgraphSummary describes one subgraph.
type SubgraphSummary struct {
	Index        int             `json:"index"`
	Name         string          `json:"name,omitempty"`
	NumTensors   int             `json:"num_tensors"`
	NumOperators int             `json:"num_operators"`
	Inputs       []int32         `json:"inputs"`
	Outputs      []int32         `json:"outputs"`
	Tensors      []TensorSummary `json:"tensors"`
}

// TensorSummary describes one tensor.
type TensorSummary struct {
	Index          int          `json:"index"`
	Name           string       `json:"name,omitempty"`
	Shape          []int32      `json:"shape"`
	ShapeSignature []int32      `json:"shape_signature,omitempty"`
	Type           string       `json:"type"`
	Quantization   Quantization `json:"quantization"`
	Bytes          int64        `json:"bytes"`
	Constant       bool         `json:"constant"`
	Buffer         uint32       `json:"buffer"`
	Variable       bool         `json:"variable,omitempty"`
	Sparse         bool         `json:"sparse,omitempty"`
}

// Quantization describes a tensor's quantization parameters.
type Quantization struct {
	Kind            string   `json:"kind"`
	Scale           *float64 `json:"scale,omitempty"`
	ZeroPoint       *int64   `json:"zero_point,omitempty"`
	Axis            *int32   `json:"axis,omitempty"`
	Count           int      `json:"count,omitempty"`
	BlockSize       int32    `json:"block_size,omitempty"`
	ScaleTensor     *int32   `json:"scale_tensor,omitempty"`
	ZeroPointTensor *int32   `json:"zero_point_tensor,omitempty"`
}

// SignatureSummary describes one signature def.
type SignatureSummary struct {
	Key      string      `json:"key"`
	Subgraph uint32      `json:"subgraph"`
	Inputs   []SigTensor `json:"inputs"`
	Outputs  []SigTensor `json:"outputs"`
}

// SigTensor is one input or output of a signature.
type SigTensor struct {
	Name           string  `json:"name"`
	Tensor         uint32  `json:"tensor"`
	Shape          []int32 `json:"shape"`
	ShapeSignature []int32 `json:"shape_signature,omitempty"`
	Type           string  `json:"type"`
}

// OpCount counts the operators using one operator code.
type OpCount struct {
	Op      string `json:"op"`
	Version int32  `json:"version"`
	Count   int    `json:"count"`
}

// TypeBytes totals the constant buffers of one tensor type.
type TypeBytes struct {
	Type    string `json:"type"`
	Tensors int    `json:"tensors"`
	Buffers int    `json:"buffers"`
	Bytes   int64  `json:"bytes"`
}

// MetadataSummary describes one metadata entry.
type MetadataSummary struct {
	Name   string `json:"name"`
	Buffer uint32 `json:"buffer"`
	Bytes  int64  `json:"bytes"`
}

// Inspect summarises m. m must be valid as Read leaves it (indices in
// range).
func Inspect(m *Model) *Summary {
	meta := m.Meta
	s := &Summary{
		Schema:        SummarySchema,
		Model:         m.Name,
		Version:       meta.Version,
		Description:   meta.Description,
		Layout:        LayoutInline.String(),
		Buffers:       len(m.Buffers),
		Subgraphs:     []SubgraphSummary{},
		Signatures:    []SignatureSummary{},
		Operators:     []OpCount{},
		WeightsByType: []TypeBytes{},
		Metadata:      []MetadataSummary{},
	}
	if m.Layout == LayoutOffset {
		s.Layout = LayoutOffset.String()
	}
	if m.src != nil {
		s.FileBytes = m.src.size
	}
	metaBufs := map[uint32]bool{}
	for _, md := range meta.Metadata {
		metaBufs[md.Buffer] = true
		s.Metadata = append(s.Metadata, MetadataSummary{Name: md.Name, Buffer: md.Buffer, Bytes: bufferLen(m, md.Buffer)})
	}
	for _, b := range meta.MetadataBuffer {
		metaBufs[uint32(b)] = true
	}
	seen := map[contentKey]bool{}
	for _, b := range m.Buffers {
		if b.Data == nil {
			continue
		}
		if sec, ok := b.Data.(*Section); ok {
			k := contentKey{src: sec.src, off: sec.off, n: sec.n}
			if seen[k] {
				continue
			}
			seen[k] = true
		}
		s.DataBytes += b.Data.Len()
	}

	byType := map[string]*TypeBytes{}
	counted := map[uint32]bool{}
	for si, sg := range meta.Subgraphs {
		ss := SubgraphSummary{Index: si, Name: sg.Name, NumTensors: len(sg.Tensors), NumOperators: len(sg.Operators),
			Inputs: nonNil(sg.Inputs), Outputs: nonNil(sg.Outputs), Tensors: make([]TensorSummary, 0, len(sg.Tensors))}
		for ti, t := range sg.Tensors {
			ts := tensorSummary(m, ti, t)
			ss.Tensors = append(ss.Tensors, ts)
			if !ts.Constant || metaBufs[t.Buffer] {
				continue
			}
			tb := byType[ts.Type]
			if tb == nil {
				tb = &TypeBytes{Type: ts.Type}
				byType[ts.Type] = tb
			}
			tb.Tensors++
			if !counted[t.Buffer] {
				counted[t.Buffer] = true
				tb.Buffers++
				tb.Bytes += ts.Bytes
				s.WeightBytes += ts.Bytes
			}
		}
		s.Subgraphs = append(s.Subgraphs, ss)
	}
	for _, tb := range byType {
		s.WeightsByType = append(s.WeightsByType, *tb)
	}
	sort.Slice(s.WeightsByType, func(i, j int) bool {
		a, b := s.WeightsByType[i], s.WeightsByType[j]
		if a.Bytes != b.Bytes {
			return a.Bytes > b.Bytes
		}
		return a.Type < b.Type
	})

	for _, sig := range meta.SignatureDefs {
		ss := SignatureSummary{Key: sig.SignatureKey, Subgraph: sig.SubgraphIndex, Inputs: []SigTensor{}, Outputs: []SigTensor{}}
		tensors := meta.Subgraphs[sig.SubgraphIndex].Tensors
		for _, tm := range sig.Inputs {
			ss.Inputs = append(ss.Inputs, sigTensor(tm, tensors))
		}
		for _, tm := range sig.Outputs {
			ss.Outputs = append(ss.Outputs, sigTensor(tm, tensors))
		}
		s.Signatures = append(s.Signatures, ss)
	}

	uses := make([]int, len(meta.OperatorCodes))
	for _, sg := range meta.Subgraphs {
		for _, op := range sg.Operators {
			uses[op.OpcodeIndex]++
		}
	}
	for i, oc := range meta.OperatorCodes {
		if uses[i] > 0 {
			s.Operators = append(s.Operators, OpCount{Op: opName(oc), Version: oc.Version, Count: uses[i]})
		}
	}
	sort.SliceStable(s.Operators, func(i, j int) bool {
		a, b := s.Operators[i], s.Operators[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		if a.Op != b.Op {
			return a.Op < b.Op
		}
		return a.Version < b.Version
	})
	return s
}

func nonNil(s []int32) []int32 {
	if s == nil {
		return []int32{}
	}
	return s
}

func bufferLen(m *Model, i uint32) int64 {
	if int(i) < len(m.Buffers) && m.Buffers[i].Data != nil {
		return m.Buffers[i].Data.Len()
	}
	return 0
}

func tensorSummary(m *Model, index int, t *fb.TensorT) TensorSummary {
	ts := TensorSummary{
		Index:          index,
		Name:           t.Name,
		Shape:          nonNil(t.Shape),
		ShapeSignature: t.ShapeSignature,
		Type:           TypeName(t.Type),
		Quantization:   quantization(t),
		Buffer:         t.Buffer,
		Variable:       t.IsVariable,
		Sparse:         t.Sparsity != nil,
	}
	if n := bufferLen(m, t.Buffer); n > 0 {
		ts.Constant, ts.Bytes = true, n
	} else if elems, err := NumElements(t.Shape); err == nil {
		ts.Bytes, _ = DataSize(t.Type, elems)
	}
	return ts
}

func quantization(t *fb.TensorT) Quantization {
	q := t.Quantization
	if q == nil {
		return Quantization{Kind: "none"}
	}
	if q.Details != nil && q.Details.Value != nil {
		switch v := q.Details.Value.(type) {
		case *fb.BlockwiseQuantizationT:
			scales, zeros := v.Scales, v.ZeroPoints
			return Quantization{Kind: "blockwise", BlockSize: v.BlockSize, ScaleTensor: &scales, ZeroPointTensor: &zeros}
		case *fb.MultiAxisQuantizationT:
			scales, zeros := v.Scales, v.ZeroPoints
			return Quantization{Kind: "multi-axis", BlockSize: v.BlockSize, ScaleTensor: &scales, ZeroPointTensor: &zeros}
		case *fb.CustomQuantizationT:
			return Quantization{Kind: "custom"}
		}
	}
	switch len(q.Scale) {
	case 0:
		return Quantization{Kind: "none"}
	case 1:
		out := Quantization{Kind: "per-tensor"}
		if f := float64(q.Scale[0]); !math.IsNaN(f) && !math.IsInf(f, 0) {
			out.Scale = &f
		}
		if len(q.ZeroPoint) == 1 {
			zp := q.ZeroPoint[0]
			out.ZeroPoint = &zp
		}
		return out
	default:
		axis := q.QuantizedDimension
		return Quantization{Kind: "per-channel", Axis: &axis, Count: len(q.Scale)}
	}
}

func sigTensor(tm *fb.TensorMapT, tensors []*fb.TensorT) SigTensor {
	t := tensors[tm.TensorIndex]
	return SigTensor{Name: tm.Name, Tensor: tm.TensorIndex, Shape: nonNil(t.Shape), ShapeSignature: t.ShapeSignature, Type: TypeName(t.Type)}
}

// ShapeString writes a shape as [1,-1,256], with -1 for the dynamic dimensions that the
// shape signature marks.
func ShapeString(shape, signature []int32) string {
	dims := make([]string, len(shape))
	for i, d := range shape {
		if len(signature) == len(shape) && signature[i] == -1 {
			dims[i] = "-1"
		} else {
			dims[i] = fmt.Sprint(d)
		}
	}
	return "[" + strings.Join(dims, ",") + "]"
}

// String describes the quantization in a few words: "per-channel axis 0
// ×256", "blockwise block 32 scales t7", "-" for none.
func (q Quantization) String() string {
	switch q.Kind {
	case "per-tensor":
		s := "per-tensor"
		if q.Scale != nil {
			s += fmt.Sprintf(" scale %.6g", *q.Scale)
		}
		if q.ZeroPoint != nil {
			s += fmt.Sprintf(" zp %d", *q.ZeroPoint)
		}
		return s
	case "per-channel":
		return fmt.Sprintf("per-channel axis %d ×%d", *q.Axis, q.Count)
	case "blockwise", "multi-axis":
		s := fmt.Sprintf("%s block %d scales t%d", q.Kind, q.BlockSize, *q.ScaleTensor)
		if *q.ZeroPointTensor >= 0 {
			s += fmt.Sprintf(" zp t%d", *q.ZeroPointTensor)
		}
		return s
	case "none":
		return "-"
	}
	return q.Kind
}
