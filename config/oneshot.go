package config

import (
	"path/filepath"
	"strings"
)

// OneShotJob is the job of one model and one recipe (or budget) without a
// job file, as `qpipe quantize` and `qpipe plan --recipe` run it: load in,
// annotate with the built-in rules, quantize, verify (fallback: on_mismatch
// fallback) and serialize to out with layout ("auto" or "" picks). The job
// is named after the input file without its extension.
func OneShotJob(in, out string, r *Recipe, b *Budget, fallback bool, layout string) *Job {
	if layout == "auto" {
		layout = ""
	}
	onMismatch := "fail"
	if fallback {
		onMismatch = "fallback"
	}
	name := filepath.Base(in)
	return &Job{
		Path: in,
		Name: strings.TrimSuffix(name, filepath.Ext(name)),
		Stages: []Stage{
			&LoadStage{Path: in},
			&AnnotateStage{},
			&QuantizeStage{Recipes: []*Recipe{r}, Budget: b},
			&VerifyStage{OnMismatch: onMismatch},
			&SerializeStage{Path: out, Layout: layout},
		},
	}
}
