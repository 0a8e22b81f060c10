package stages

import (
	"fmt"
	"slices"
	"strings"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// request is what one reader asks of a weight.
type request struct {
	sc   *scheme
	axis int // channel axis (int8) — part of the parameters
}

func (r request) key() string {
	if r.sc.kind == kindFloat {
		return "none"
	}
	return fmt.Sprintf("%s/%d", r.sc.label(), r.axis)
}

// mismatch is a scheme that does not fit a tensor.
type mismatch struct {
	label  string
	scheme string
	why    string
}

// resolve picks each reader's scheme: the last candidate of the recipe
// that is valid for the op (SEMANTICS.md §4), then checks it fits.
func (q *Quantize) resolve(m *tflite.Model, uses []*weightUse) ([]request, map[*weightUse]string, error) {
	reqs := make([]request, len(uses))
	fallbacks := map[*weightUse]string{}
	var bad []mismatch
	for i, u := range uses {
		sg := m.Meta.Subgraphs[u.sg]
		op := sg.Operators[u.op]
		t := sg.Tensors[u.tensor]
		sc, err := pick(q.Recipe, u, t, q.scales())
		if err != nil {
			return nil, nil, err
		}
		if c, ok := q.Choice[u.key()]; ok {
			if sc, err = fromConfig(c, q.scales()); err != nil {
				return nil, nil, err
			}
			if !sc.validFor(u.code, u.input) {
				return nil, nil, fmt.Errorf("%s: %s was chosen for %s, which does not accept it", tensorLabel(t, u.sg, u.tensor), sc.name, opLabel(u))
			}
		}
		why := fits(sc, t.Shape)
		if why == "" {
			why = runtimeRefuses(sc, u.code)
		}
		if why != "" {
			if !q.Fallback {
				bad = append(bad, mismatch{label: tensorLabel(t, u.sg, u.tensor), scheme: sc.name, why: why})
				continue
			}
			fallbacks[u] = sc.name
			sc = fallbackFor(sc, t.Shape)
		}
		axis := channelAxis(u.code, op, u.input, len(t.Shape))
		if sc.perTensor {
			axis = 0
		}
		reqs[i] = request{sc: sc, axis: axis}
	}
	if len(bad) > 0 {
		return nil, nil, mismatchError(bad)
	}
	return reqs, fallbacks, nil
}

// pick is the scheme of the last candidate valid for the op. A winning
// AI Edge Quantizer rule's min_weight_elements keeps a smaller weight float.
func pick(r *config.Recipe, u *weightUse, t *fb.TensorT, scales string) (*scheme, error) {
	sc := floatScheme
	var win *config.ScopeRule
	for _, c := range candidates(r, u) {
		cs, err := fromConfig(c.scheme, scales)
		if err != nil {
			return nil, err
		}
		valid := cs.validFor(u.code, u.input)
		if c.rule != nil && c.rule.SkipChecks && !valid {
			return nil, fmt.Errorf("%s: %s: skip_checks: true forces %s onto %s, which qpipe does not write (the runtime has no kernel for it); remove skip_checks or the rule", c.rule.P, c.rule, cs.name, opLabel(u))
		}
		if valid {
			sc, win = cs, c.rule
		}
	}
	if win != nil && win.MinWeightElements > 0 && sc.kind != kindFP16 &&
		slices.Contains(config.MinWeightOps, fb.EnumNamesBuiltinOperator[u.code]) && numElements(t.Shape) < win.MinWeightElements {
		return floatScheme, nil
	}
	return sc, nil
}

// opLabel names the op reading a weight, for messages.
func opLabel(u *weightUse) string {
	return fmt.Sprintf("%s#%d (subgraph %d, input %d, scope %q)", fb.EnumNamesBuiltinOperator[u.code], u.op, u.sg, u.input, u.scope)
}

// runtimeRefuses returns why the runtime does not run scheme sc on the op
// although the reference quantizer writes it, or "".
func runtimeRefuses(sc *scheme, code fb.BuiltinOperator) string {
	if sc.kind == kindDynInt8 && sc.perTensor && code == fb.BuiltinOperatorDEPTHWISE_CONV_2D {
		// conformance/aeq_test.go: 0.77 rel L2 against the dequantized
		// reference on aeq_single_depthwise_conv2d_bias.
		return "LiteRT computes a hybrid DEPTHWISE_CONV_2D whose int8 weight has one scale per tensor wrong (77 % output error measured on LiteRT.js); use CHANNELWISE for it"
	}
	return ""
}

// fits returns why scheme sc cannot quantize a tensor of this shape, or "".
func fits(sc *scheme, shape []int32) string {
	if sc.kind != kindInt4Block {
		if sc.kind != kindFloat && len(shape) == 0 {
			return "a scalar has no channel axis"
		}
		return ""
	}
	if len(shape) != 2 {
		return fmt.Sprintf("blockwise int4 needs a 2-D weight, the tensor has shape %v", shape)
	}
	if sc.block < 32 || sc.block%32 != 0 {
		return fmt.Sprintf("block size %d is not a multiple of 32 (at least 32)", sc.block)
	}
	if last := int(shape[1]); last%sc.block != 0 {
		return fmt.Sprintf("last dimension %d is not divisible by block size %d", last, sc.block)
	}
	return ""
}

// fallbackFor is the next scheme that fits: a smaller power-of-two block
// that divides the last dimension, else int8 channelwise (as llama.cpp
// falls back to a format whose block fits).
func fallbackFor(sc *scheme, shape []int32) *scheme {
	if sc.kind == kindInt4Block && len(shape) == 2 {
		for b := 128; b >= 32; b /= 2 {
			if b < sc.block && int(shape[1])%b == 0 {
				return &scheme{name: fmt.Sprintf("dynamic_int4_block%d", b), kind: kindInt4Block, block: b, symmetric: true, scales: sc.scales}
			}
		}
	}
	return &scheme{name: "dynamic_int8", kind: kindDynInt8, symmetric: true}
}

func mismatchError(bad []mismatch) error {
	seen := map[mismatch]bool{}
	uniq := bad[:0]
	for _, x := range bad {
		if !seen[x] {
			seen[x] = true
			uniq = append(uniq, x)
		}
	}
	bad = uniq
	var b strings.Builder
	fmt.Fprintf(&b, "%d weight(s) do not fit the recipe:", len(bad))
	for _, x := range bad {
		fmt.Fprintf(&b, "\n  %s: %s: %s", x.label, x.scheme, x.why)
	}
	b.WriteString("\nchoose a block size that divides these dimensions, give these layers another scheme in the recipe, or set `verify: {on_mismatch: fallback}` to quantize them with the next scheme that fits")
	return fmt.Errorf("%s", b.String())
}
