package stages

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/litertlm"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/pipeline"
)

// bundleState is a loaded LiteRT-LM bundle: each TFLiteModel section is a
// part (pipeline.Parts) that annotate, quantize and verify treat as a model
// of its own; serialize writes the bundle with the quantized sections and
// every other section copied byte for byte (docs/FORMAT.md §12).
type bundleState struct {
	b     *litertlm.Bundle
	path  string
	parts []*pipeline.Part
}

// Parts implements pipeline.Parts.
func (bs *bundleState) Parts() []*pipeline.Part { return bs.parts }

// Fork implements pipeline.Forker: every part is forked.
func (bs *bundleState) Fork() (any, error) {
	c := &bundleState{b: bs.b, path: bs.path, parts: make([]*pipeline.Part, len(bs.parts))}
	for i, p := range bs.parts {
		pc := *p
		m, err := p.Model.(*modelState).Fork()
		if err != nil {
			return nil, err
		}
		pc.Model, pc.Output = m, nil
		if p.Plan != nil {
			pc.Plan = p.Plan.Clone()
		}
		c.parts[i] = &pc
	}
	return c, nil
}

func (bs *bundleState) close() error {
	var errs []error
	for _, p := range bs.parts {
		errs = append(errs, p.Model.(*modelState).m.Close())
	}
	return errors.Join(append(errs, bs.b.Close())...)
}

// loadBundle opens every TFLiteModel section of the bundle at path in place.
func loadBundle(path string) (*bundleState, error) {
	b, err := litertlm.Open(path)
	if err != nil {
		return nil, err
	}
	bs := &bundleState{b: b, path: path}
	for _, sec := range b.Sections {
		if sec.Type != litertlm.TypeTFLiteModel {
			continue
		}
		m, err := tflite.OpenSection(path, sec.Begin, sec.Len(), path+" "+sec.Name())
		if err != nil {
			bs.close()
			return nil, err
		}
		bs.parts = append(bs.parts, &pipeline.Part{Section: sec.Index, Name: sec.Name(), ModelType: sec.ModelType(), Model: &modelState{m: m, path: path, section: sec.Index}})
	}
	if len(bs.parts) == 0 {
		bs.close()
		return nil, fmt.Errorf("%s: the bundle has no TFLiteModel section to quantize", path)
	}
	return bs, nil
}

// IsBundlePath says whether an output path names a LiteRT-LM bundle.
func IsBundlePath(path string) bool { return strings.HasSuffix(strings.ToLower(path), ".litertlm") }

// modelContent is a quantized model written into a bundle's section.
type modelContent struct {
	m    *tflite.Model
	opts tflite.WriteOptions
	n    int64
}

func (c *modelContent) Len() int64 { return c.n }
func (c *modelContent) WriteAt(ctx context.Context, f *os.File, off int64) error {
	return tflite.WriteAt(ctx, f, off, c.m, c.opts)
}

// writeBundle writes b to path with each part's model in its section.
func (z *Serialize) writeBundle(ctx context.Context, s *pipeline.State, path string, b *litertlm.Bundle, parts []*pipeline.Part) error {
	wo := tflite.WriteOptions{Layout: z.Layout, Sync: z.Sync}
	var models []*tflite.Model
	for _, p := range parts {
		models = append(models, p.Model.(*modelState).m)
	}
	report, done := z.progress(s)
	defer done()
	models = withProgressAll(models, report)
	repl := map[int]litertlm.Content{}
	for i, p := range parts {
		if len(p.Model.(*modelState).jobs) == 0 && b.ReaderAt() != nil {
			continue // nothing quantized: the section is copied byte for byte
		}
		n, err := tflite.Size(models[i], wo)
		if err != nil {
			return fmt.Errorf("%s: %w", p.Name, err)
		}
		repl[p.Section] = &modelContent{m: models[i], opts: wo, n: n}
	}
	// verify's accuracy gate, per section, on the written bundle before it
	// is renamed into place.
	var accuracy *pipeline.Accuracy
	check := func(tmp string) error {
		for _, p := range parts {
			g := p.Model.(*modelState).gate
			if g == nil {
				continue
			}
			s.Log.Info().Int("samples", g.cfg.Samples).Int("section", p.Section).Msg("accuracy gate: comparing the written section with the float model's")
			acc, err := g.measure(ctx, tmp, p.Section)
			if err != nil {
				return fmt.Errorf("%s: %w", p.Name, err)
			}
			accuracy = mergeAccuracy(accuracy, acc, p.Section, len(parts) > 1)
		}
		return nil
	}
	out, err := z.written(ctx, s, path, func() error {
		return litertlm.WriteFile(ctx, path, b, repl, litertlm.WriteOptions{Sync: z.Sync, Check: check})
	})
	if err != nil {
		return err
	}
	out.Layout = "litertlm"
	out.Accuracy = accuracy
	for _, p := range parts {
		out.Tensors = append(out.Tensors, tensorReports(s, p.Model.(*modelState), p.Plan)...)
	}
	if s.Plan != nil {
		out.Sizes = s.Plan.SizesByRole()
		out.Budget = s.Plan.Budget
	}
	s.Output = out
	return nil
}

// wrapBare is a new bundle holding a bare model as its one TFLiteModel
// section (model_type tf_lite_prefill_decode).
func wrapBare() (*litertlm.Bundle, error) {
	return litertlm.New(nil, []litertlm.NewSection{{Type: litertlm.TypeTFLiteModel,
		Items: []litertlm.KV{{Key: "model_type", Value: "tf_lite_prefill_decode"}}}})
}

// onePart is the part a bundle's .tflite output holds: the one sel names
// (by index, else by model type), or the only one.
func (bs *bundleState) onePart(path, sel string) (*pipeline.Part, error) {
	var names []string
	for _, p := range bs.parts {
		names = append(names, p.Name)
	}
	if sel != "" {
		for _, p := range bs.parts {
			if strconv.Itoa(p.Section) == sel {
				return p, nil
			}
		}
		var found []*pipeline.Part
		for _, p := range bs.parts {
			if p.ModelType == sel {
				found = append(found, p)
			}
		}
		if len(found) == 1 {
			return found[0], nil
		}
		return nil, fmt.Errorf("serialize.section %q names %d of the bundle's TFLiteModel sections (%s); name one by model type or index", sel, len(found), strings.Join(names, "; "))
	}
	if len(bs.parts) == 1 {
		return bs.parts[0], nil
	}
	return nil, fmt.Errorf("output %s is a bare .tflite but the bundle has %d TFLiteModel sections (%s): write a .litertlm, or pick one with serialize.section", path, len(bs.parts), strings.Join(names, "; "))
}

// forPart is q with the recipe quantize.sections gives the part s runs on
// (by section index, else by model type), or q itself.
func (q *Quantize) forPart(s *pipeline.State) *Quantize {
	if s.Part == nil || len(q.Sections) == 0 {
		return q
	}
	r, ok := q.Sections[strconv.Itoa(s.Part.Section)]
	if !ok {
		r, ok = q.Sections[s.Part.ModelType]
	}
	if !ok || r == nil {
		return q
	}
	c := *q
	c.Recipe, c.Sections = r, nil
	return &c
}

// sectionRecipes is the per-section recipes of a branch: its recipe's
// (an AEQ model-type mapping), then the quantize stage's, which win.
func sectionRecipes(r *config.Recipe, q *config.QuantizeStage) map[string]*config.Recipe {
	if len(r.Sections) == 0 {
		return q.Sections
	}
	m := maps.Clone(r.Sections)
	maps.Copy(m, q.Sections)
	return m
}

// sectionCheck warns about per-section recipe selectors (quantize.sections,
// an AEQ mapping's model types) that name no TFLiteModel section of the
// loaded model; with --strict they fail the job, as Lint's findings do.
type sectionCheck struct {
	selectors []string
	strict    bool
}

func newSectionCheck(recipes []*config.Recipe, q *config.QuantizeStage, strict bool) *sectionCheck {
	seen := map[string]bool{}
	c := &sectionCheck{strict: strict}
	for _, r := range recipes {
		if r == nil {
			continue
		}
		for sel := range sectionRecipes(r, q) {
			if !seen[sel] {
				seen[sel] = true
				c.selectors = append(c.selectors, sel)
			}
		}
	}
	if len(c.selectors) == 0 {
		return nil
	}
	slices.Sort(c.selectors)
	return c
}

func (*sectionCheck) Name() string { return "sections" }

// Whole implements pipeline.WholeStage: the check sees every section.
func (*sectionCheck) Whole() {}

func (c *sectionCheck) Run(ctx context.Context, s *pipeline.State) error {
	var unused []string
	bs, ok := s.Model.(*bundleState)
	for _, sel := range c.selectors {
		used := false
		if ok {
			for _, p := range bs.parts {
				used = used || strconv.Itoa(p.Section) == sel || p.ModelType == sel
			}
		}
		if !used {
			unused = append(unused, strconv.Quote(sel))
		}
	}
	if len(unused) == 0 {
		return ctx.Err()
	}
	msg := fmt.Sprintf("per-section recipes for %s name no TFLiteModel section of %s", strings.Join(unused, ", "), s.InputPath)
	if !ok {
		msg += " (a bare .tflite: they apply to LiteRT-LM bundles)"
	}
	if c.strict {
		return fmt.Errorf("%w:\n%s", ErrStrict, msg)
	}
	s.Warnings = append(s.Warnings, msg)
	if !s.DryRun {
		s.Log.Warn().Msg(msg)
	}
	return ctx.Err()
}

// mergeAccuracy adds one section's measured gate to a bundle's; with
// several sections each check's signature is prefixed by its section.
func mergeAccuracy(all, one *pipeline.Accuracy, section int, prefix bool) *pipeline.Accuracy {
	if prefix {
		for i := range one.Checks {
			one.Checks[i].Signature = fmt.Sprintf("section %d: %s", section, one.Checks[i].Signature)
		}
	}
	if all == nil {
		return one
	}
	all.Checks = append(all.Checks, one.Checks...)
	return all
}
