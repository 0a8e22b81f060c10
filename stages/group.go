package stages

import (
	"fmt"

	"github.com/qpipe/qpipe/internal/tflite"
)

// tensorGroup is one tensor (original or duplicate) with the readers that
// share its request.
type tensorGroup struct {
	sg, tensor int
	req        request
	uses       []*weightUse
	dupOf      int // original tensor index when this is a duplicate, else -1
}

// original is the tensor whose weight the group holds: its own, or the
// one it duplicates. Plans, metrics and calibration statistics are kept
// under the original.
func (g *tensorGroup) original() tensorKey {
	if g.dupOf >= 0 {
		return tensorKey{g.sg, g.dupOf}
	}
	return tensorKey{g.sg, g.tensor}
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
			if g.req.sc.searched() {
				dup.Name += "_" + g.req.sc.scales
			}
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
