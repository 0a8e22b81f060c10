package stages

import (
	"context"
	"fmt"
	"runtime"
	"sort"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
	"github.com/qpipe/qpipe/pipeline"
)

// Quantize applies a recipe to the annotated weights: it decides a scheme
// for every op input that reads a weight, checks that each fits the tensor
// (before any weight is touched), duplicates tensors and buffers whose
// readers disagree, computes every scale, rewrites the tables (types,
// quantization parameters, scale tensors, DEQUANTIZE ops, op versions) and
// leaves each quantized buffer as content that is computed while serialize
// writes it.
type Quantize struct {
	Recipe *config.Recipe
	// Fallback replaces a scheme that does not fit a tensor (a block size
	// that does not divide its last dimension) by the next one that does,
	// instead of failing the job (verify's on_mismatch: fallback).
	Fallback bool
	// StrictReference turns off the int4 scale clamp (SEMANTICS.md §6.5):
	// all-zero and tiny blocks then get the reference's zero or subnormal
	// float16 scales, which XNNPACK refuses.
	StrictReference bool
	// Reference writes, instead of the quantized model, the float model
	// whose weights are replaced by their dequantized values: the sharp
	// reference that the runtime output of the quantized model must match
	// up to the runtime's own arithmetic.
	Reference bool
}

func (*Quantize) Name() string { return "quantize" }

// request is what one reader asks of a weight.
type request struct {
	sc   *scheme
	axis int // channel axis (int8) — part of the parameters
}

func (r request) key() string {
	if r.sc.kind == kindFloat {
		return "none"
	}
	return fmt.Sprintf("%s/%d", r.sc.name, r.axis)
}

// mismatch is a scheme that does not fit a tensor.
type mismatch struct {
	label  string
	scheme string
	why    string
}

func (q *Quantize) Run(ctx context.Context, s *pipeline.State) error {
	ms, err := model(s)
	if err != nil {
		return err
	}
	if s.Plan == nil {
		return fmt.Errorf("no annotations: the job needs an annotate stage before quantize (the runner adds one by default)")
	}
	m := ms.m
	s.Plan.Recipe = q.Recipe.Name

	reqs, fallbacks, err := q.resolve(m, ms.uses)
	if err != nil {
		return err
	}
	groups := groupTensors(m, ms.uses, reqs)
	jobs := groupBuffers(m, groups)
	for _, j := range jobs {
		j.reference = q.Reference
		j.outLen = j.outputLen()
	}
	if s.DryRun {
		ms.jobs = jobs
		updatePlan(s.Plan, m, groups, jobs, fallbacks)
		return ctx.Err()
	}
	if err := computeParams(ctx, m, jobs, !q.StrictReference); err != nil {
		return err
	}
	for _, j := range jobs {
		j.ctx = ctx
	}
	rewrite(m, groups, jobs, s.Metrics)
	ms.jobs = jobs
	updatePlan(s.Plan, m, groups, jobs, fallbacks)
	return ctx.Err()
}

// recipeCheck resolves every recipe of a multi-recipe job against the
// annotated weights before the first branch runs, so that a recipe that
// does not fit the model fails the job before any weight is quantized and
// before another recipe's output is written. (With one recipe, quantize's
// own resolve is that check.)
type recipeCheck struct {
	quantize []*Quantize
}

func (*recipeCheck) Name() string { return "check" }

func (c *recipeCheck) Run(ctx context.Context, s *pipeline.State) error {
	ms, err := model(s)
	if err != nil {
		return err
	}
	var bad []string
	for _, q := range c.quantize {
		if _, _, err := q.resolve(ms.m, ms.uses); err != nil {
			bad = append(bad, fmt.Sprintf("recipe %s: %v", q.Recipe.Name, err))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s\nno output was written", strings.Join(bad, "\n"))
	}
	return ctx.Err()
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
		sc := floatScheme
		for _, c := range candidates(q.Recipe, u.role, u.layer) {
			cs, err := fromConfig(c)
			if err != nil {
				return nil, nil, err
			}
			if cs.validFor(u.code, u.input) {
				sc = cs
			}
		}
		if why := fits(sc, t.Shape); why != "" {
			if !q.Fallback {
				bad = append(bad, mismatch{label: tensorLabel(t, u.sg, u.tensor), scheme: sc.name, why: why})
				continue
			}
			fallbacks[u] = sc.name
			sc = fallbackFor(sc, t.Shape)
		}
		reqs[i] = request{sc: sc, axis: channelAxis(u.code, op, u.input, len(t.Shape))}
	}
	if len(bad) > 0 {
		return nil, nil, mismatchError(bad)
	}
	return reqs, fallbacks, nil
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
				return &scheme{name: fmt.Sprintf("dynamic_int4_block%d", b), kind: kindInt4Block, block: b, symmetric: true}
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

// tensorGroup is one tensor (original or duplicate) with the readers that
// share its request.
type tensorGroup struct {
	sg, tensor int
	req        request
	uses       []*weightUse
	dupOf      int // original tensor index when this is a duplicate, else -1
}

// groupTensors gives each set of agreeing readers of a tensor its own
// tensor: the float readers (or, with none, the first group) keep the
// original; every other group gets a copy (SEMANTICS.md §8).
func groupTensors(m *tflite.Model, uses []*weightUse, reqs []request) []*tensorGroup {
	refs := tensorRefs(m)
	byTensor := map[tensorKey][]int{}
	var order []tensorKey
	for i, u := range uses {
		k := u.key()
		if _, ok := byTensor[k]; !ok {
			order = append(order, k)
		}
		byTensor[k] = append(byTensor[k], i)
	}
	var out []*tensorGroup
	for _, k := range order {
		idx := byTensor[k]
		var groups []*tensorGroup
		byReq := map[string]*tensorGroup{}
		hasFloat := refs[k] > len(idx) // read by something other than a weight slot
		for _, i := range idx {
			if reqs[i].sc.kind == kindFloat {
				hasFloat = true
				continue
			}
			g, ok := byReq[reqs[i].key()]
			if !ok {
				g = &tensorGroup{sg: k.sg, tensor: k.tensor, req: reqs[i], dupOf: -1}
				byReq[reqs[i].key()] = g
				groups = append(groups, g)
			}
			g.uses = append(g.uses, uses[i])
		}
		for gi, g := range groups {
			if gi == 0 && !hasFloat {
				out = append(out, g)
				continue
			}
			sg := m.Meta.Subgraphs[k.sg]
			orig := sg.Tensors[k.tensor]
			dup := *orig
			dup.Name = orig.Name + "_" + g.req.sc.name
			sg.Tensors = append(sg.Tensors, &dup)
			g.tensor, g.dupOf = len(sg.Tensors)-1, k.tensor
			for _, u := range g.uses {
				sg.Operators[u.op].Inputs[u.input] = int32(g.tensor)
				u.tensor = g.tensor
			}
			out = append(out, g)
		}
	}
	return out
}

// tensorRefs counts, per tensor, the op inputs and subgraph outputs that
// name it.
func tensorRefs(m *tflite.Model) map[tensorKey]int {
	refs := map[tensorKey]int{}
	for si, sg := range m.Meta.Subgraphs {
		for _, op := range sg.Operators {
			for _, i := range op.Inputs {
				if i >= 0 {
					refs[tensorKey{si, int(i)}]++
				}
			}
		}
		for _, i := range sg.Outputs {
			refs[tensorKey{si, int(i)}]++
		}
	}
	return refs
}

// bufferJob is one buffer's worth of quantized data: every tensor in it
// shares the buffer, the request and the shape.
type bufferJob struct {
	label   string // the first tensor, for messages
	buffer  uint32
	src     tflite.Content
	shape   []int
	req     request
	tensors []*tensorGroup
	params
}

// groupBuffers decides which buffer each quantized tensor writes: tensors
// that share a buffer and agree share the quantized buffer; the float
// readers (or, with none, the first group) keep the original index and the
// others get a new buffer.
func groupBuffers(m *tflite.Model, groups []*tensorGroup) []*bufferJob {
	type member struct {
		key string
		g   *tensorGroup
	}
	byBuffer := map[uint32][]member{}
	var order []uint32
	for _, g := range groups {
		t := m.Meta.Subgraphs[g.sg].Tensors[g.tensor]
		if _, ok := byBuffer[t.Buffer]; !ok {
			order = append(order, t.Buffer)
		}
		byBuffer[t.Buffer] = append(byBuffer[t.Buffer], member{key: fmt.Sprintf("%s%v", g.req.key(), t.Shape), g: g})
	}
	// Every tensor of the model that names one of these buffers but is not
	// being quantized keeps reading float bytes.
	floatReaders := map[uint32]bool{}
	quantized := map[tensorKey]bool{}
	for _, g := range groups {
		quantized[tensorKey{g.sg, g.tensor}] = true
	}
	for si, sg := range m.Meta.Subgraphs {
		for ti, t := range sg.Tensors {
			if _, ok := byBuffer[t.Buffer]; ok && !quantized[tensorKey{si, ti}] {
				floatReaders[t.Buffer] = true
			}
		}
	}
	var jobs []*bufferJob
	for _, b := range order {
		src := m.Buffers[b].Data
		keep := !floatReaders[b]
		byKey := map[string]*bufferJob{}
		for _, mb := range byBuffer[b] {
			j, ok := byKey[mb.key]
			if !ok {
				t := m.Meta.Subgraphs[mb.g.sg].Tensors[mb.g.tensor]
				j = &bufferJob{label: tensorLabel(t, mb.g.sg, mb.g.tensor), src: src, req: mb.g.req, shape: intShape(t.Shape)}
				if keep {
					j.buffer, keep = b, false
				} else {
					j.buffer = m.AddBuffer(nil)
				}
				byKey[mb.key] = j
				jobs = append(jobs, j)
			}
			j.tensors = append(j.tensors, mb.g)
		}
	}
	return jobs
}

func intShape(s []int32) []int {
	out := make([]int, len(s))
	for i, d := range s {
		out[i] = int(d)
	}
	return out
}

// computeParams computes every job's scales, several tensors at a time.
func computeParams(ctx context.Context, m *tflite.Model, jobs []*bufferJob, clampTiny bool) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for _, j := range jobs {
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := j.computeParams(clampTiny); err != nil {
				return fmt.Errorf("%s: %w", j.label, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// rewrite changes the tables: tensor types and quantization, scale tensors,
// DEQUANTIZE ops, op versions; and makes each job's buffer lazy content.
func rewrite(m *tflite.Model, groups []*tensorGroup, jobs []*bufferJob, metrics bool) {
	var dq []*dequantOp
	for _, j := range jobs {
		if j.late && !j.reference && j.req.sc.kind != kindInt4Block {
			m.LateTables = true // int8 scales are table values
		}
		m.Buffers[j.buffer] = tflite.Buffer{Data: j.content(metrics)}
		m.Meta.Buffers[j.buffer] = &fb.BufferT{}
		if j.reference {
			for _, g := range j.tensors {
				m.Meta.Subgraphs[g.sg].Tensors[g.tensor].Buffer = j.buffer
			}
			continue
		}
		var scaleBuf uint32
		if j.req.sc.kind == kindInt4Block {
			scaleBuf = m.AddBuffer(j.scaleContent())
		}
		for _, g := range j.tensors {
			sg := m.Meta.Subgraphs[g.sg]
			t := sg.Tensors[g.tensor]
			t.Buffer = j.buffer
			j.setTensor(t)
			if j.req.sc.kind == kindInt4Block {
				sg.Tensors = append(sg.Tensors, &fb.TensorT{
					Name:   t.Name + "_scales",
					Type:   fb.TensorTypeFLOAT16,
					Shape:  []int32{int32(j.shape[0]), int32(j.shape[1] / j.req.sc.block)},
					Buffer: scaleBuf,
				})
				t.Quantization.Details.Value.(*fb.BlockwiseQuantizationT).Scales = int32(len(sg.Tensors) - 1)
			}
			if j.req.sc.dequantize() {
				dq = append(dq, newDequant(m, g, t))
			} else {
				raiseVersions(m, g, t)
			}
		}
	}
	insertDequantize(m, dq)
}

// raiseVersions raises the OperatorCode of every op that now reads t as a
// hybrid weight to what FORMAT.md §5 requires.
func raiseVersions(m *tflite.Model, g *tensorGroup, t *fb.TensorT) {
	form := weightForm(t, false)
	for _, u := range g.uses {
		op := m.Meta.Subgraphs[u.sg].Operators[u.op]
		hasBias, asym := opFlags(u.code, op)
		need := RequiredVersion(u.code, form, hasBias, asym)
		if oc := m.Meta.OperatorCodes[op.OpcodeIndex]; oc.Version < need {
			oc.Version = need
		}
	}
}

// dequantOp is a DEQUANTIZE to insert before the first reader of a weight.
type dequantOp struct {
	sg     int
	before *fb.OperatorT
	op     *fb.OperatorT
	form   WeightForm
}

// newDequant adds the float tensor `<name>_dequant` and rewires the
// weight's readers to it (SEMANTICS.md §7).
func newDequant(m *tflite.Model, g *tensorGroup, t *fb.TensorT) *dequantOp {
	sg := m.Meta.Subgraphs[g.sg]
	sg.Tensors = append(sg.Tensors, &fb.TensorT{
		Name:  t.Name + "_dequant",
		Type:  fb.TensorTypeFLOAT32,
		Shape: append([]int32(nil), t.Shape...),
	})
	out := int32(len(sg.Tensors) - 1)
	first := g.uses[0].op
	for _, u := range g.uses {
		first = min(first, u.op)
		sg.Operators[u.op].Inputs[u.input] = out
	}
	return &dequantOp{
		sg:     g.sg,
		before: sg.Operators[first],
		op:     &fb.OperatorT{Inputs: []int32{int32(g.tensor)}, Outputs: []int32{out}},
		form:   weightForm(t, true),
	}
}

// insertDequantize puts the DEQUANTIZE ops into the operator lists, each
// right before the first op that reads its output, and gives them one
// OperatorCode whose version covers every form.
func insertDequantize(m *tflite.Model, ops []*dequantOp) {
	if len(ops) == 0 {
		return
	}
	need := int32(1)
	for _, d := range ops {
		need = max(need, RequiredVersion(fb.BuiltinOperatorDEQUANTIZE, d.form, false, false))
	}
	code := m.OperatorCodeIndex(fb.BuiltinOperatorDEQUANTIZE, need)
	bySG := map[int]map[*fb.OperatorT][]*fb.OperatorT{}
	for _, d := range ops {
		d.op.OpcodeIndex = code
		if bySG[d.sg] == nil {
			bySG[d.sg] = map[*fb.OperatorT][]*fb.OperatorT{}
		}
		bySG[d.sg][d.before] = append(bySG[d.sg][d.before], d.op)
	}
	sgs := make([]int, 0, len(bySG))
	for si := range bySG {
		sgs = append(sgs, si)
	}
	sort.Ints(sgs)
	for _, si := range sgs {
		sg := m.Meta.Subgraphs[si]
		out := make([]*fb.OperatorT, 0, len(sg.Operators)+len(ops))
		for _, op := range sg.Operators {
			out = append(out, bySG[si][op]...)
			out = append(out, op)
		}
		sg.Operators = out
	}
}

// updatePlan fills in each weight's scheme and output size. A weight's
// bytes_out counts each quantized buffer once (with its scales), plus the
// float original when some reader still needs it.
func updatePlan(p *pipeline.Plan, m *tflite.Model, groups []*tensorGroup, jobs []*bufferJob, fallbacks map[*weightUse]string) {
	type orig struct{ sg, tensor int }
	out := map[orig]int64{}
	keepsFloat := map[orig]bool{}
	schemes := map[orig][]string{}
	blocks := map[orig]int{}
	from := map[orig]string{}
	for _, j := range jobs {
		for gi, g := range j.tensors {
			o := orig{g.sg, g.tensor}
			if g.dupOf >= 0 {
				o.tensor = g.dupOf
				keepsFloat[o] = true
				p.Notes = append(p.Notes, fmt.Sprintf("%s: its readers disagree: duplicated as %q for %s", tensorLabel(m.Meta.Subgraphs[g.sg].Tensors[g.dupOf], g.sg, g.dupOf), m.Meta.Subgraphs[g.sg].Tensors[g.tensor].Name, g.req.sc.name))
			}
			if gi == 0 {
				out[o] += j.outLen + j.scaleLen()
			}
			schemes[o] = append(schemes[o], g.req.sc.name)
			if g.req.sc.kind == kindInt4Block {
				blocks[o] = g.req.sc.block
			}
			for _, u := range g.uses {
				if f, ok := fallbacks[u]; ok {
					from[o] = f
				}
			}
		}
	}
	for _, w := range p.Weights {
		o := orig{w.Subgraph, w.Tensor}
		names := dedupe(schemes[o])
		if len(names) == 0 {
			continue
		}
		name := strings.Join(names, "+")
		w.Scheme = &name
		if b, ok := blocks[o]; ok {
			w.BlockSize = &b
		}
		w.Fallback = from[o]
		w.BytesOut = out[o]
		if keepsFloat[o] {
			w.BytesOut += w.BytesIn
		}
	}
	p.Sum()
}
