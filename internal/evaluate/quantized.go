package evaluate

import (
	"fmt"
	"math"

	"github.com/qpipe/qpipe/internal/interp"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// Models with integer inputs and outputs (static, full-integer ones):
// their INT8 and INT16 inputs take the same real values a float input
// would (generated uniform in [-1, 1), or read from an inputs file),
// quantized with the input's scale and zero point; their INT8 and INT16
// outputs are dequantized before they are compared or summarised. So a
// float model and its static version with integer I/O run on the same
// values and are compared as floats.

// isQuantType reports whether t is an integer type evaluate quantizes.
func isQuantType(t fb.TensorType) bool {
	return t == fb.TensorTypeINT8 || t == fb.TensorTypeINT16
}

// quantizeTo returns the tensor of type typ holding vals quantized with
// scale and zp: round(v/s) (in double, half away from zero, as the
// runtime's QUANTIZE) + zp, clamped to the type.
func quantizeTo(typ fb.TensorType, shape []int, vals []float32, scale float32, zp int32) *interp.Tensor {
	t := &interp.Tensor{Type: typ, Shape: shape}
	lo, hi := float64(math.MinInt8), float64(math.MaxInt8)
	if typ == fb.TensorTypeINT16 {
		lo, hi = math.MinInt16, math.MaxInt16
		t.I16 = make([]int16, len(vals))
	} else {
		t.I8 = make([]int8, len(vals))
	}
	for i, v := range vals {
		q := min(max(math.Round(float64(v)/float64(scale))+float64(zp), lo), hi)
		if typ == fb.TensorTypeINT16 {
			t.I16[i] = int16(q)
		} else {
			t.I8[i] = int8(q)
		}
	}
	return t
}

// dequantize returns t's real values as a FLOAT32 tensor: (q − zp)·s.
func dequantize(t *interp.Tensor, scale float32, zp int32) *interp.Tensor {
	out := &interp.Tensor{Type: fb.TensorTypeFLOAT32, Shape: t.Shape}
	if t.I16 != nil {
		out.F32 = make([]float32, len(t.I16))
		for i, q := range t.I16 {
			out.F32[i] = float32(int32(q)-zp) * scale
		}
		return out
	}
	out.F32 = make([]float32, len(t.I8))
	for i, q := range t.I8 {
		out.F32[i] = float32(int32(q)-zp) * scale
	}
	return out
}

// quantOK reports an input or output evaluate cannot fill or read: an
// INT8 or INT16 one without one finite positive scale.
func quantOK(io interp.IO) error {
	if isQuantType(io.Type) && !(io.Scale > 0 && !math.IsInf(float64(io.Scale), 0)) {
		return fmt.Errorf("%q is %s without one positive scale: only quantized integer inputs and outputs can be generated, read or compared", io.Name, io.Type)
	}
	return nil
}

// adapt converts a sample's inputs (made for the reference's signature)
// to the types of ios, a model's inputs: floats quantized for an integer
// input, integers dequantized for a float one; others unchanged.
func adapt(inputs map[string]*interp.Tensor, ios []interp.IO, ref []interp.IO) map[string]*interp.Tensor {
	var out map[string]*interp.Tensor
	for i, io := range ios {
		t := inputs[io.Name]
		if t == nil || t.Type == io.Type {
			continue
		}
		if out == nil {
			out = make(map[string]*interp.Tensor, len(inputs))
			for k, v := range inputs {
				out[k] = v
			}
		}
		switch {
		case t.Type == fb.TensorTypeFLOAT32 && isQuantType(io.Type):
			out[io.Name] = quantizeTo(io.Type, t.Shape, t.F32, io.Scale, io.ZeroPoint)
		case isQuantType(t.Type) && io.Type == fb.TensorTypeFLOAT32:
			r := ref[refIndex(ref, io.Name, i)]
			out[io.Name] = dequantize(t, r.Scale, r.ZeroPoint)
		}
	}
	if out == nil {
		return inputs
	}
	return out
}

// refIndex is the index of the IO named name in ios (i when it is there).
func refIndex(ios []interp.IO, name string, i int) int {
	if i < len(ios) && ios[i].Name == name {
		return i
	}
	for j, io := range ios {
		if io.Name == name {
			return j
		}
	}
	return i
}

// comparableTypes: the same type, or FLOAT32 and a quantized integer type
// (compared as dequantized floats).
func comparableTypes(a, b fb.TensorType) bool {
	return a == b || (a == fb.TensorTypeFLOAT32 && isQuantType(b)) || (isQuantType(a) && b == fb.TensorTypeFLOAT32)
}
