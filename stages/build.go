package stages

import (
	"fmt"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/pipeline"
)

// Options are the command line's settings that apply to every stage.
type Options struct {
	Hash bool
	// Sync flushes every output to the disk (fsync) before it counts as
	// written.
	Sync     bool
	Progress func(done, total int64)
	// StrictReference disables the int4 scale clamp.
	StrictReference bool
	// DequantizedReference writes float models whose weights are the
	// dequantized values of what the recipe would write (see
	// Quantize.Reference).
	DequantizedReference bool
	// Strict makes the job fail on lint findings (see Lint) instead of
	// warning about them.
	Strict bool
	// Scales replaces the job's quantize.scales (--scales): the int4 scale
	// method where neither a scheme nor its recipe sets one.
	Scales string
	// BudgetCache is the folder where budgets keep measured sensitivities
	// between runs ("" = measure every time).
	BudgetCache string
	// OutputPath, when set, chooses where branch i writes the output whose
	// destination is dest (the serialize path with {name} and {suffix}
	// filled in): `qpipe run --locked` and `--check` build beside or away
	// from the destinations. An error fails the build.
	OutputPath func(i int, dest string) (string, error)
}

// Build turns a parsed job file into a runnable job: load and annotate
// once, then quantize, verify and serialize once per recipe.
func Build(job *config.Job, opt Options) (*pipeline.Job, error) {
	pj := &pipeline.Job{Name: job.Name}
	var (
		load      *config.LoadStage
		annotate  *config.AnnotateStage
		quantize  *config.QuantizeStage
		verify    *config.VerifyStage
		serialize *config.SerializeStage
	)
	for _, st := range job.Stages {
		switch x := st.(type) {
		case *config.LoadStage:
			load = x
		case *config.AnnotateStage:
			annotate = x
		case *config.QuantizeStage:
			quantize = x
		case *config.VerifyStage:
			verify = x
		case *config.SerializeStage:
			serialize = x
		default:
			return nil, fmt.Errorf("%s: stage %s is not supported", st.Pos(), st.Kind())
		}
	}
	if load == nil || serialize == nil {
		return nil, fmt.Errorf("%s: a job needs a load and a serialize stage", job.Path)
	}
	a := &Annotate{}
	if annotate != nil {
		a.Rules = annotate.Rules
	}
	pj.Prefix = []pipeline.Stage{&Load{Path: load.Path, At: load.P.String()}, a}
	layout, err := parseLayout(serialize.Layout)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", serialize.P, err)
	}
	recipes := []*config.Recipe{nil}
	if quantize != nil {
		recipes = quantize.Recipes
	}
	check := &recipeCheck{}
	var choice map[tensorKey]*config.Scheme
	if quantize != nil && quantize.Budget != nil {
		choice = map[tensorKey]*config.Scheme{}
		bs := &Budget{Config: quantize.Budget, Layout: layout, Choice: choice, CacheDir: opt.BudgetCache, Scales: quantize.Scales, Calibration: quantize.Calibration}
		if opt.Scales != "" {
			bs.Scales = opt.Scales
		}
		pj.Prefix = append(pj.Prefix, bs)
	}
	for i, r := range recipes {
		b := pipeline.Branch{Recipe: "none", Suffix: "f32"}
		if r != nil && r.Static != nil {
			b.Recipe, b.Suffix = r.Name, r.Suffix
			b.Stages = append(b.Stages, &StaticQuantize{Recipe: r, Calibration: quantize.Calibration})
		} else if r != nil {
			b.Recipe, b.Suffix = r.Name, r.Suffix
			q := &Quantize{
				Recipe:          r,
				Fallback:        verify != nil && verify.OnMismatch == "fallback",
				StrictReference: opt.StrictReference,
				Reference:       opt.DequantizedReference,
				Scales:          quantize.Scales,
				Calibration:     quantize.Calibration,
				Choice:          choice,
				Sections:        sectionRecipes(r, quantize),
				// The only quantize run of the model: its gptq rows are
				// its own and are released as its weights are written.
				ReleaseRows: len(recipes) == 1 && choice == nil,
			}
			if opt.Scales != "" {
				q.Scales = opt.Scales
			}
			check.quantize = append(check.quantize, q)
			b.Stages = append(b.Stages, q)
		}
		if verify != nil {
			b.Stages = append(b.Stages, &Verify{Accuracy: verify.Accuracy})
		}
		path := serialize.Path
		if opt.OutputPath != nil {
			if path, err = opt.OutputPath(i, ExpandPath(path, job.Name, b.Suffix)); err != nil {
				return nil, err
			}
		}
		b.Stages = append(b.Stages, &Serialize{Path: path, Section: serialize.Section, Layout: layout, Hash: opt.Hash, Sync: opt.Sync, Progress: opt.Progress})
		pj.Branches = append(pj.Branches, b)
	}
	if len(check.quantize) > 1 {
		pj.Prefix = append(pj.Prefix, check)
	}
	if sc := newSectionCheck(recipes, quantize, opt.Strict); sc != nil {
		pj.Prefix = append(pj.Prefix, sc)
	}
	pj.Prefix = append(pj.Prefix, &Lint{Rules: a.Rules, Recipes: recipes, Strict: opt.Strict})
	return pj, nil
}

func parseLayout(s string) (tflite.Layout, error) {
	switch s {
	case "", "auto":
		return tflite.LayoutAuto, nil
	case "inline":
		return tflite.LayoutInline, nil
	case "offset":
		return tflite.LayoutOffset, nil
	}
	return 0, fmt.Errorf("layout %q: want auto, inline or offset", s)
}
