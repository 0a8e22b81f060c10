package static

import (
	"errors"
	"fmt"
	"math"

	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// Check verifies the integer ops of m as LiteRT's builtin kernels check
// them at Prepare (docs/SEMANTICS.md §16.4), so that a
// model the runtime would refuse, or run with wrong arithmetic, is never
// written. Each problem names the subgraph, operator and tensor.
func Check(m *tflite.Model) error {
	var errs []error
	for si, sg := range m.Meta.Subgraphs {
		for oi, op := range sg.Operators {
			c := opCheck{m: m, sg: sg, si: si, oi: oi, op: op, code: m.OpCode(op)}
			c.run()
			errs = append(errs, c.errs...)
		}
	}
	return errors.Join(errs...)
}

type opCheck struct {
	m      *tflite.Model
	sg     *fb.SubGraphT
	si, oi int
	op     *fb.OperatorT
	code   fb.BuiltinOperator
	errs   []error
}

func (c *opCheck) errorf(t int32, format string, args ...any) {
	name := ""
	if t >= 0 && int(t) < len(c.sg.Tensors) {
		name = fmt.Sprintf(" tensor %d %q", t, c.sg.Tensors[t].Name)
	}
	c.errs = append(c.errs, fmt.Errorf("%s: subgraph %d operator %d (%s)%s: %s", c.m.Name, c.si, c.oi, opName(c.code), name, fmt.Sprintf(format, args...)))
}

func (c *opCheck) tensor(k int, outputs bool) (int32, *fb.TensorT) {
	list := c.op.Inputs
	if outputs {
		list = c.op.Outputs
	}
	if k >= len(list) || list[k] < 0 {
		return -1, nil
	}
	return list[k], c.sg.Tensors[list[k]]
}

func isIntAct(t *fb.TensorT) bool {
	return t != nil && (t.Type == fb.TensorTypeINT8 || t.Type == fb.TensorTypeINT16)
}

func scaleZP(t *fb.TensorT) (float32, int64, bool) {
	q := t.Quantization
	if q == nil || len(q.Scale) != 1 || len(q.ZeroPoint) > 1 {
		return 0, 0, false
	}
	var zp int64
	if len(q.ZeroPoint) == 1 {
		zp = q.ZeroPoint[0]
	}
	return q.Scale[0], zp, true
}

func (c *opCheck) run() {
	ru, quantizable := rules[c.code]
	var inT *fb.TensorT
	if quantizable && ru.acts != nil {
		_, inT = c.tensor(ru.acts[0], false)
	} else {
		_, inT = c.tensor(0, false)
	}
	if !quantizable || !isIntAct(inT) {
		if c.code == fb.BuiltinOperatorQUANTIZE {
			c.quantize()
		}
		return
	}
	// Activations: per-tensor, int16 with zero point 0, one width.
	for k := range c.op.Inputs {
		if k == ru.weight || k == ru.bias || !ru.isAct(k) {
			continue
		}
		c.activation(k, false, inT.Type)
	}
	for k := range c.op.Outputs {
		c.activation(k, true, inT.Type)
	}
	switch c.code {
	case fb.BuiltinOperatorCONV_2D, fb.BuiltinOperatorDEPTHWISE_CONV_2D, fb.BuiltinOperatorFULLY_CONNECTED, fb.BuiltinOperatorTRANSPOSE_CONV:
		c.weighted(ru, inT)
	case fb.BuiltinOperatorSOFTMAX, fb.BuiltinOperatorLOGISTIC, fb.BuiltinOperatorTANH:
		c.fixedOutput(inT.Type)
	case fb.BuiltinOperatorCONCATENATION:
		o, oT := c.tensor(0, true)
		if oT == nil {
			return
		}
		os, oz, _ := scaleZP(oT)
		for k, t := range c.op.Inputs {
			if t < 0 {
				continue
			}
			s, z, _ := scaleZP(c.sg.Tensors[t])
			if s != os || z != oz {
				c.errorf(t, "input %d has scale %g zero point %d, the output %q %g, %d: the integer kernel needs them equal (concatenation.cc:228-248)", k, s, z, c.sg.Tensors[o].Name, os, oz)
			}
		}
	}
}

// activation checks one activation input or output.
func (c *opCheck) activation(k int, output bool, want fb.TensorType) {
	t, tt := c.tensor(k, output)
	if tt == nil {
		return
	}
	if !isIntAct(tt) {
		if tt.Type == fb.TensorTypeFLOAT32 {
			c.errorf(t, "float32 next to %s activations", tflite.TypeName(want))
		}
		return
	}
	if tt.Type != want {
		c.errorf(t, "%s next to %s activations", tflite.TypeName(tt.Type), tflite.TypeName(want))
	}
	s, zp, ok := scaleZP(tt)
	switch {
	case !ok:
		c.errorf(t, "an integer activation needs one scale and zero point (per tensor)")
	case !(s > 0) || math.IsInf(float64(s), 0):
		c.errorf(t, "scale %g is not positive and finite", s)
	case tt.Type == fb.TensorTypeINT16 && zp != 0:
		c.errorf(t, "int16 zero point %d: LiteRT's int16 kernels need 0", zp)
	case tt.Type == fb.TensorTypeINT8 && (zp < -128 || zp > 127):
		c.errorf(t, "int8 zero point %d outside [-128, 127]", zp)
	}
}

// weighted checks a CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED's
// filter and bias (conv.cc:381-417, depthwise_conv.cc:159-177,
// fully_connected.cc:537-585, kernel_util.cc:214-339).
func (c *opCheck) weighted(ru opRule, inT *fb.TensorT) {
	w, wT := c.tensor(ru.weight, false)
	if wT == nil {
		c.errorf(-1, "no filter")
		return
	}
	if wT.Type != fb.TensorTypeINT8 || wT.Quantization == nil || len(wT.Quantization.Scale) == 0 {
		c.errorf(w, "filter is %s without int8 quantization", tflite.TypeName(wT.Type))
		return
	}
	q := wT.Quantization
	for _, z := range q.ZeroPoint {
		if z != 0 {
			c.errorf(w, "filter zero point %d: must be 0", z)
			break
		}
	}
	if n := len(q.Scale); n > 1 {
		dim := int(q.QuantizedDimension)
		switch {
		case dim < 0 || dim >= len(wT.Shape) || int(wT.Shape[dim]) != n:
			c.errorf(w, "%d per-channel scales along dimension %d of shape %v", n, dim, wT.Shape)
		case c.code == fb.BuiltinOperatorFULLY_CONNECTED && dim != 0:
			c.errorf(w, "per-channel FULLY_CONNECTED filter along dimension %d: must be 0", dim)
		case c.code == fb.BuiltinOperatorDEPTHWISE_CONV_2D && dim != 3:
			c.errorf(w, "per-channel DEPTHWISE_CONV_2D filter along dimension %d: must be 3", dim)
		case (c.code == fb.BuiltinOperatorCONV_2D || c.code == fb.BuiltinOperatorTRANSPOSE_CONV) && dim != 0:
			c.errorf(w, "per-channel %s filter along dimension %d: must be 0", opName(c.code), dim)
		}
	}
	b, bT := c.tensor(ru.bias, false)
	if bT == nil {
		if c.code == fb.BuiltinOperatorCONV_2D {
			c.errorf(-1, "an integer CONV_2D needs a bias (conv.cc:403-407)")
		}
		return
	}
	biasType := fb.TensorTypeFLOAT32
	if o := fcOptions(c.op); o != nil {
		biasType = o.QuantizedBiasType
	} else if c.op.BuiltinOptions != nil {
		switch o := c.op.BuiltinOptions.Value.(type) {
		case *fb.Conv2DOptionsT:
			biasType = o.QuantizedBiasType
		case *fb.TransposeConvOptionsT:
			biasType = o.QuantizedBiasType
		}
	}
	switch {
	case inT.Type == fb.TensorTypeINT8 && bT.Type != fb.TensorTypeINT32:
		c.errorf(b, "bias is %s: int8 activations need int32", tflite.TypeName(bT.Type))
	case inT.Type == fb.TensorTypeINT16 && c.code == fb.BuiltinOperatorDEPTHWISE_CONV_2D && bT.Type != fb.TensorTypeINT64:
		c.errorf(b, "bias is %s: a 16x8 DEPTHWISE_CONV_2D needs int64", tflite.TypeName(bT.Type))
	case inT.Type == fb.TensorTypeINT16 && bT.Type == fb.TensorTypeINT32 && biasType != fb.TensorTypeINT32:
		c.errorf(b, "int32 bias under int16 activations without quantized_bias_type INT32: the kernel reads it as int64")
	case inT.Type == fb.TensorTypeINT16 && bT.Type != fb.TensorTypeINT32 && bT.Type != fb.TensorTypeINT64:
		c.errorf(b, "bias is %s: 16x8 needs int64 (or int32 with quantized_bias_type)", tflite.TypeName(bT.Type))
	}
	bq := bT.Quantization
	if bq == nil || len(bq.Scale) != len(q.Scale) {
		c.errorf(b, "bias has %d scales, the filter %d", scaleCount(bq), len(q.Scale))
		return
	}
	for _, z := range bq.ZeroPoint {
		if z != 0 {
			c.errorf(b, "bias zero point %d: must be 0", z)
			break
		}
	}
	// The per-channel kernels ignore the bias scale and read the values at
	// s_in·s_w (kernel_util.cc:214-289); the per-tensor FULLY_CONNECTED
	// allows 2 % of the output scale (:291-339). Stricter here: the values
	// must have been quantized at s_in·s_w, up to float32 rounding.
	sIn, _, _ := scaleZP(inT)
	for k, s := range bq.Scale {
		want := float64(float64(sIn) * float64(q.Scale[k]))
		if math.Abs(want-float64(s)) > 1e-6*want {
			c.errorf(b, "bias scale %g of channel %d is not input scale × filter scale (%g)", s, k, want)
			break
		}
	}
}

func scaleCount(q *fb.QuantizationParametersT) int {
	if q == nil {
		return 0
	}
	return len(q.Scale)
}

// fixedOutput checks SOFTMAX, LOGISTIC and TANH outputs
// (activations.cc:394-425, :444-491, :504-532, :553-561).
func (c *opCheck) fixedOutput(typ fb.TensorType) {
	o, oT := c.tensor(0, true)
	if oT == nil {
		return
	}
	s, zp, _ := scaleZP(oT)
	if typ == fb.TensorTypeINT16 {
		if s != 1.0/32768 || zp != 0 {
			c.errorf(o, "int16 output scale %g zero point %d: must be 1/32768 and 0", s, zp)
		}
		return
	}
	switch c.code {
	case fb.BuiltinOperatorSOFTMAX:
		if zp != -128 || math.Abs(float64(float64(s)*256)-1) > 0.001 {
			c.errorf(o, "int8 output scale %g zero point %d: must be 1/256 and -128", s, zp)
		}
	case fb.BuiltinOperatorLOGISTIC:
		if s != 1.0/256 || zp != -128 {
			c.errorf(o, "int8 output scale %g zero point %d: must be 1/256 and -128", s, zp)
		}
	}
}

// quantize checks a QUANTIZE between int16 tensors (quantize.cc:201-203).
func (c *opCheck) quantize() {
	_, inT := c.tensor(0, false)
	o, oT := c.tensor(0, true)
	if inT == nil || oT == nil || inT.Type != fb.TensorTypeINT16 || oT.Type != fb.TensorTypeINT16 {
		return
	}
	_, z1, _ := scaleZP(inT)
	_, z2, _ := scaleZP(oT)
	if z1 != 0 || z2 != 0 {
		c.errorf(o, "int16 requantization needs zero points 0 (have %d, %d)", z1, z2)
	}
}
