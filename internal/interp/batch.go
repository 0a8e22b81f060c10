package interp

import (
	"context"
	"fmt"

	"github.com/qpipe/qpipe/internal/tflite"
)

// RunBatch runs the signature with the given key on every input set of
// batch (each as Run takes them) operator by operator: an operator runs
// for every sample before the next one runs, so each constant weight is
// read once per batch, not once per sample (what matters when the model
// is larger than memory and its weights stream from disk), and what is
// held is the live values of all the samples, never more than one
// operator's worth beyond them. The values computed are Run's, bit for
// bit, and Options.Observe sees every sample's events (operator by
// operator, samples in order).
//
// before, when set, is called before each operator runs, once per sample
// in order, with the operator's event as Observe would get it but without
// outputs (Outputs nil); when it returns false for some sample, the pass
// stops before that operator and RunBatch returns no outputs and no
// error: a caller that only needs the inputs of operators up to some
// point does not pay for the rest.
func (in *Interpreter) RunBatch(ctx context.Context, signature string, batch []map[string]*Tensor, before func(sample int, ev OpEvent) bool) ([]map[string]*Tensor, error) {
	var sig *Signature
	for i := range in.sigs {
		if in.sigs[i].Key == signature {
			sig = &in.sigs[i]
		}
	}
	if sig == nil {
		return nil, fmt.Errorf("interp: %s: no signature %q", in.m.Name, signature)
	}
	sg := in.sgs[sig.Subgraph]
	frames := make([]*frame, len(batch))
	for b, inputs := range batch {
		f := sg.newFrame()
		for _, io := range sig.Inputs {
			t := inputs[io.Name]
			if t == nil {
				return nil, fmt.Errorf("interp: %s: signature %q, sample %d: input %q (%s %v) is missing", in.m.Name, sig.Key, b, io.Name, tflite.TypeName(io.Type), io.Shape)
			}
			if err := checkInput(io, t); err != nil {
				return nil, fmt.Errorf("interp: %s: signature %q, sample %d: input %q: %w", in.m.Name, sig.Key, b, io.Name, err)
			}
			f.vals[io.Tensor] = t
		}
		if len(inputs) != len(sig.Inputs) {
			return nil, fmt.Errorf("interp: %s: signature %q, sample %d: %d inputs given, the signature takes %d", in.m.Name, sig.Key, b, len(inputs), len(sig.Inputs))
		}
		frames[b] = f
	}
	for _, p := range sg.ops {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if before != nil {
			goOn := true
			for b, f := range frames {
				goOn = before(b, inputEvent(&opCtx{ctx: ctx, sg: sg, f: f, p: p})) && goOn
			}
			if !goOn {
				return nil, nil
			}
		}
		if p.k.runBatch != nil && !p.folded && len(frames) > 1 {
			cs := make([]*opCtx, len(frames))
			for b, f := range frames {
				cs[b] = &opCtx{ctx: ctx, sg: sg, f: f, p: p}
			}
			if err := p.k.runBatch(cs); err != nil {
				return nil, err
			}
			for b, c := range cs {
				if err := sg.finish(c); err != nil {
					return nil, fmt.Errorf("sample %d: %w", b, err)
				}
			}
			continue
		}
		for b, f := range frames {
			if err := sg.step(&opCtx{ctx: ctx, sg: sg, f: f, p: p}); err != nil {
				if len(frames) > 1 {
					return nil, fmt.Errorf("sample %d: %w", b, err)
				}
				return nil, err
			}
		}
	}
	outs := make([]map[string]*Tensor, len(frames))
	for b, f := range frames {
		var err error
		if outs[b], err = in.outputs(sig, f); err != nil {
			return nil, err
		}
	}
	return outs, nil
}

// outputs are the signature's outputs in a frame that ran.
func (in *Interpreter) outputs(sig *Signature, f *frame) (map[string]*Tensor, error) {
	out := make(map[string]*Tensor, len(sig.Outputs))
	for _, io := range sig.Outputs {
		v, err := f.value(io.Tensor)
		if err != nil {
			return nil, err
		}
		if v == nil {
			return nil, fmt.Errorf("interp: %s: signature %q: output %q (tensor %d) was never computed", in.m.Name, sig.Key, io.Name, io.Tensor)
		}
		out[io.Name] = v
	}
	return out, nil
}

// step runs one operator in frame c.f (subgraph.run's step).
func (s *subgraph) step(c *opCtx) error {
	if !c.p.folded {
		if err := c.p.k.run(c); err != nil {
			return err
		}
	}
	return s.finish(c)
}

// finish checks what an operator computed, shows it to the observer and
// releases the values no later operator reads.
func (s *subgraph) finish(c *opCtx) error {
	p, f := c.p, c.f
	if !p.folded {
		for k, o := range p.op.Outputs {
			v := f.vals[o]
			if v == nil {
				return c.errf("output %d was not computed", k)
			}
			if err := checkOutput(s.sg.Tensors[o], v); err != nil {
				return c.errf("output %d (%q): %v", k, s.sg.Tensors[o].Name, err)
			}
		}
	}
	s.observe(c)
	s.release(f, p)
	return nil
}

// inputEvent is the event of the operator about to run or just run: its
// inputs (constant weights nil), no outputs.
func inputEvent(c *opCtx) OpEvent {
	ev := OpEvent{Subgraph: c.sg.index, Operator: c.p.index, Code: c.p.code}
	for k, t := range c.p.op.Inputs {
		ev.InputTensors = append(ev.InputTensors, int(t))
		var v *Tensor
		// Quantized constants (filters, int8/int16 operands) are not
		// materialised for an event, as before integer models ran.
		if t >= 0 && !c.p.folded && !(weightSlot(c.p.code, k) && c.weightLike(k)) && !(c.sg.isConst(int(t)) && isIntAct(c.sg.sg.Tensors[t].Type)) {
			v, _ = c.f.value(int(t))
		}
		ev.Inputs = append(ev.Inputs, v)
	}
	return ev
}
