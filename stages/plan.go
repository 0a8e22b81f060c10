package stages

import (
	"fmt"
	"strings"

	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/pipeline"
)

// updatePlan fills in each weight's scheme and output size. A weight's
// bytes_out counts each quantized buffer once (with its scales), plus the
// float original when some reader still needs it.
func updatePlan(p *pipeline.Plan, m *tflite.Model, groups []*tensorGroup, jobs []*bufferJob, fallbacks map[*weightUse]string) {
	out := map[tensorKey]int64{}
	keepsFloat := map[tensorKey]bool{}
	schemes := map[tensorKey][]string{}
	blocks := map[tensorKey]int{}
	from := map[tensorKey]string{}
	searched := map[tensorKey]*bufferJob{}
	for _, j := range jobs {
		for gi, g := range j.tensors {
			o := g.original()
			if g.dupOf >= 0 {
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
			if (g.req.sc.searched() || g.req.sc.gptq()) && searched[o] == nil {
				searched[o] = j
			}
			for _, u := range g.uses {
				if f, ok := fallbacks[u]; ok {
					from[o] = f
				}
			}
		}
	}
	for _, w := range p.Weights {
		o := tensorKey{w.Subgraph, w.Tensor}
		names := dedupe(schemes[o])
		if len(names) == 0 {
			continue
		}
		name := strings.Join(names, "+")
		w.Scheme = &name
		if b, ok := blocks[o]; ok {
			w.BlockSize = &b
		}
		if j := searched[o]; j != nil {
			w.Scales = j.req.sc.scales
			if p := j.planSQNR; p != nil {
				w.SQNR, w.SQNRMinMax = &p.chosen, &p.minMax
			}
		}
		w.Fallback = from[o]
		w.BytesOut = out[o]
		if keepsFloat[o] {
			w.BytesOut += w.BytesIn
		}
	}
	p.Sum()
}
