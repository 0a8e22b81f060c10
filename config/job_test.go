package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// dumpJob renders a decoded job deterministically, positions included, so a
// test can compare the whole structure against a literal.
func dumpJob(j *Job) string {
	var b strings.Builder
	fmt.Fprintf(&b, "job path=%s dir=%s name=%s\n", j.Path, j.Dir, j.Name)
	for _, s := range j.Stages {
		switch s := s.(type) {
		case *LoadStage:
			fmt.Fprintf(&b, "%s load %s\n", s.Pos(), s.Path)
		case *AnnotateStage:
			fmt.Fprintf(&b, "%s annotate\n", s.Pos())
			for _, r := range s.Rules {
				fmt.Fprintf(&b, "  %s rule role=%s match=%q ops=%v layer_group=%d\n", r.P, r.Role, r.Pattern, r.Ops, r.LayerGroup())
			}
		case *QuantizeStage:
			fmt.Fprintf(&b, "%s quantize\n", s.Pos())
			for _, r := range s.Recipes {
				fmt.Fprintf(&b, "  %s recipe name=%s suffix=%s\n", r.P, r.Name, r.Suffix)
				for _, slot := range []struct {
					name string
					rr   *RoleRecipe
				}{{"default", r.Default}, {"embedding", r.Embedding}, {"attention", r.Attention}, {"feedforward", r.Feedforward}} {
					if slot.rr == nil {
						continue
					}
					fmt.Fprintf(&b, "    %s %s all=%s\n", slot.rr.P, slot.name, slot.rr.All)
					for _, o := range slot.rr.Layers {
						fmt.Fprintf(&b, "      %s layers %d-%d %s\n", o.P, o.From, o.To, o.Scheme)
					}
				}
			}
		case *VerifyStage:
			fmt.Fprintf(&b, "%s verify on_mismatch=%s\n", s.Pos(), s.OnMismatch)
			if g := s.Accuracy; g != nil {
				bound := func(p *float64) string {
					if p == nil {
						return "-"
					}
					return fmt.Sprint(*p)
				}
				fmt.Fprintf(&b, "  %s accuracy samples=%d seq=%d max_kl=%s min_top1=%s max_rel_l2=%s\n", g.P, g.Samples, g.Seq, bound(g.MaxKL), bound(g.MinTop1), bound(g.MaxRelL2))
			}
		case *SerializeStage:
			fmt.Fprintf(&b, "%s serialize %s layout=%q\n", s.Pos(), s.Path, s.Layout)
		}
	}
	for _, o := range j.Outputs() {
		fmt.Fprintf(&b, "output %s (%s)\n", o.Path, o.Recipe.Name)
	}
	for _, w := range j.Warnings {
		fmt.Fprintf(&b, "warning %s\n", w.Error())
	}
	return b.String()
}

// issueJob is the job of issue 4, with the custom recipe in place of the
// preset and the serialize path quoted (a { inside a {...} flow mapping
// must be).
const issueJob = `version: 1
name: tiny-q4                      # optional; default: the file name
stages:
  - load: {path: models/tiny_f32.tflite}
  - annotate:                      # optional; user rules run after the built-in ones, later wins
      rules:
        - {role: attention, match: 'my_attn_(?P<layer>\d+)'}
        - {role: feedforward, match: 'mlp', ops: [fully_connected, BATCH_MATMUL]}
  - quantize:
      recipe:
        default: fp16
        embedding: dynamic_int8
        attention: dynamic_int4_block32
        feedforward:
          all: dynamic_int4_block256
          layers: {"0": dynamic_int8, "14-15": dynamic_int8}
  - verify: {}
  - serialize: {path: "out/{name}_{suffix}.tflite"}
`

func TestParseJobIssueExample(t *testing.T) {
	j, err := ParseJob("jobs/tiny.yaml", []byte(issueJob))
	if err != nil {
		t.Fatal(err)
	}
	want := `job path=jobs/tiny.yaml dir=jobs name=tiny-q4
jobs/tiny.yaml:4:5 load jobs/models/tiny_f32.tflite
jobs/tiny.yaml:5:5 annotate
  jobs/tiny.yaml:7:11 rule role=attention match="my_attn_(?P<layer>\\d+)" ops=[] layer_group=1
  jobs/tiny.yaml:8:11 rule role=feedforward match="mlp" ops=[FULLY_CONNECTED BATCH_MATMUL] layer_group=-1
jobs/tiny.yaml:9:5 quantize
  jobs/tiny.yaml:11:9 recipe name=custom suffix=custom
    jobs/tiny.yaml:11:18 default all=fp16
    jobs/tiny.yaml:12:20 embedding all=dynamic_int8
    jobs/tiny.yaml:13:20 attention all=dynamic_int4_block32
    jobs/tiny.yaml:15:11 feedforward all=dynamic_int4_block256
      jobs/tiny.yaml:16:20 layers 0-0 dynamic_int8
      jobs/tiny.yaml:16:39 layers 14-15 dynamic_int8
jobs/tiny.yaml:17:5 verify on_mismatch=fail
jobs/tiny.yaml:18:5 serialize jobs/out/{name}_{suffix}.tflite layout=""
output jobs/out/tiny-q4_custom.tflite (custom)
`
	if got := dumpJob(j); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	var kinds []string
	for _, s := range j.Stages {
		kinds = append(kinds, s.Kind())
	}
	if got := strings.Join(kinds, " "); got != strings.Join(stageKinds, " ") {
		t.Errorf("kinds %s", got)
	}
	r := j.Quantize().Recipes[0]
	for _, c := range []struct {
		role  Role
		layer int
		want  string
	}{
		{RoleDefault, -1, "fp16"},
		{RoleEmbedding, -1, "dynamic_int8"},
		{RoleLMHead, -1, "dynamic_int8"},
		{RoleAttention, 3, "dynamic_int4_block32"},
		{RoleFeedforward, 0, "dynamic_int8"},
		{RoleFeedforward, 1, "dynamic_int4_block256"},
		{RoleFeedforward, 14, "dynamic_int8"},
		{RoleFeedforward, 15, "dynamic_int8"},
		{RoleFeedforward, 16, "dynamic_int4_block256"},
		{RoleFeedforward, -1, "dynamic_int4_block256"},
	} {
		if got := r.Resolve(c.role, c.layer).String(); got != c.want {
			t.Errorf("Resolve(%s, %d) = %s, want %s", c.role, c.layer, got, c.want)
		}
	}
}

func TestParseJobPresets(t *testing.T) {
	for _, p := range Presets() {
		for _, name := range append([]string{p.Name}, p.Deprecated...) {
			src := fmt.Sprintf("version: 1\nstages:\n  - load: {path: m.tflite}\n  - quantize: {recipe: %s}\n  - serialize:\n      path: out/{name}_{suffix}.tflite\n", name)
			j, err := ParseJob("q.yaml", []byte(src))
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			r := j.Quantize().Recipes[0]
			if r.Name != p.Name || r.Suffix != p.Suffix || r.String() != p.Summary {
				t.Errorf("%s: recipe %s/%s %q, want %s/%s %q", name, r.Name, r.Suffix, r, p.Name, p.Suffix, p.Summary)
			}
			if want := filepath.Join("out", "q_"+p.Suffix+".tflite"); j.Outputs()[0].Path != want {
				t.Errorf("%s: output %s, want %s", name, j.Outputs()[0].Path, want)
			}
			if r.P.String() != "q.yaml:4:24" {
				t.Errorf("%s: recipe position %s, want q.yaml:4:24", name, r.P)
			}
			deprecated := name != p.Name
			if got := len(j.Warnings); got != map[bool]int{false: 0, true: 1}[deprecated] {
				t.Errorf("%s: %d warnings: %v", name, got, j.Warnings)
			} else if deprecated && (j.Warnings[0].Pos.String() != "q.yaml:4:24" || !strings.Contains(j.Warnings[0].Msg, "deprecated") || r.Warning == "") {
				t.Errorf("%s: warning %v, recipe warning %q", name, j.Warnings[0], r.Warning)
			}
		}
	}
}

func TestParseJobRecipesList(t *testing.T) {
	src := `version: 1
stages:
  - load:
      path: /models/m.tflite
  - quantize:
      recipes:
        - dynamic_int8
        - full_fp16_recipe
        - {name: mixed, suffix: q4_mixed, default: dynamic_int8, attention: dynamic_int4_block64}
        - dynamic_int4_block512
  - verify: {on_mismatch: FALLBACK, accuracy: {max_kl: 0.05, samples: 4}}
  - serialize:
      path: /out/{name}-{suffix}.tflite
      layout: offset
`
	j, err := ParseJob("release.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := `job path=release.yaml dir=. name=release
release.yaml:3:5 load /models/m.tflite
release.yaml:5:5 quantize
  release.yaml:7:11 recipe name=dynamic_int8 suffix=q8
    recipes.yaml:130:16 default all=dynamic_int8
  release.yaml:8:11 recipe name=fp16 suffix=fp16
    recipes.yaml:145:16 default all=fp16
  release.yaml:9:11 recipe name=mixed suffix=q4_mixed
    release.yaml:9:52 default all=dynamic_int8
    release.yaml:9:77 attention all=dynamic_int4_block64
  release.yaml:10:11 recipe name=dynamic_int4_block512 suffix=q4_block512
     default all=dynamic_int4_block512
release.yaml:11:5 verify on_mismatch=fallback
  release.yaml:11:37 accuracy samples=4 seq=0 max_kl=0.05 min_top1=- max_rel_l2=-
release.yaml:12:5 serialize /out/{name}-{suffix}.tflite layout="offset"
output /out/release-q8.tflite (dynamic_int8)
output /out/release-fp16.tflite (fp16)
output /out/release-q4_mixed.tflite (mixed)
output /out/release-q4_block512.tflite (dynamic_int4_block512)
warning release.yaml:8:11: quantize.recipes[1]: recipe "full_fp16_recipe" is a deprecated upstream name (upstream Python builder); using the preset fp16 (suffix fp16)
`
	// The synthesized block-512 preset has no place in recipes.yaml: its
	// slot has no position.
	if got := dumpJob(j); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

// wantDiag is an expected diagnostic: its exact position (line:col, or
// line alone for YAML syntax errors) and substrings of its message.
type wantDiag struct {
	pos  string
	subs []string
}

func d(pos string, subs ...string) wantDiag { return wantDiag{pos, subs} }

func checkDiags(t *testing.T, file string, err error, want []wantDiag) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want %d problems", len(want))
	}
	var ds Diagnostics
	if !errors.As(err, &ds) {
		t.Fatalf("error %T %v is not Diagnostics", err, err)
	}
	if len(ds) != len(want) {
		t.Errorf("got %d problems, want %d:\n%v", len(ds), len(want), err)
	}
	for i := 0; i < len(ds) && i < len(want); i++ {
		if got, w := ds[i].Pos.String(), file+":"+want[i].pos; got != w {
			t.Errorf("problem %d at %s, want %s: %v", i, got, w, ds[i])
		}
		for _, sub := range want[i].subs {
			if !strings.Contains(ds[i].Error(), sub) {
				t.Errorf("problem %d %q lacks %q", i, ds[i].Error(), sub)
			}
		}
	}
	// Error prints one problem per line.
	if lines := strings.Count(err.Error(), "\n") + 1; lines != len(ds) {
		t.Errorf("Error() has %d lines for %d problems", lines, len(ds))
	}
}

// A minimal valid tail, so that each broken file has one planted problem.
const (
	head = "version: 1\nstages:\n  - load: {path: model.tflite}\n"
	tail = "  - serialize: {path: out.tflite}\n"
)

// badJobs are broken job files, each with the problems it must report.
// FuzzParseJob uses them as seeds too.
var badJobs = []struct {
	name string
	src  string
	want []wantDiag
}{
	{"unknown top-level key", "version: 1\nverison: 2\nstages:\n  - load: {path: m.tflite}\n  - quantize: {recipe: fp16}\n" + tail,
		[]wantDiag{d("2:1", `unknown key "verison"`, `did you mean "version"?`, "valid: version, name, stages")}},
	{"unknown stage key", head + "  - quantize: {recipe: fp16, block_size: 32}\n" + tail,
		[]wantDiag{d("4:30", "quantize: ", `unknown key "block_size"`, "valid: recipe, recipes")}},
	{"unknown scheme key", head + "  - quantize:\n      recipe:\n        default: {weight: int8, mode: dynamic_range, bits: 8}\n" + tail,
		[]wantDiag{d("6:54", "quantize.recipe.default: ", `unknown key "bits"`)}},
	{"unknown stage", head + "  - quantise: {recipe: fp16}\n" + tail,
		[]wantDiag{d("4:5", `unknown stage "quantise"`, `did you mean "quantize"?`)}},
	{"wrong type version", "version: one\nstages:\n  - load: {path: m.tflite}\n  - quantize: {recipe: fp16}\n" + tail,
		[]wantDiag{d("1:10", "version: expected an integer, got the string \"one\"")}},
	{"wrong type path", "version: 1\nstages:\n  - load: {path: 12}\n  - quantize: {recipe: fp16}\n" + tail,
		[]wantDiag{d("3:18", "load.path: expected a string, got the integer 12")}},
	{"wrong type stages", "version: 1\nstages: {load: m.tflite}\n",
		[]wantDiag{d("2:9", "stages: expected a list, got a mapping")}},
	{"wrong type recipe", head + "  - quantize: {recipe: [fp16]}\n" + tail,
		[]wantDiag{d("4:24", "quantize.recipe: expected a string, got a list")}},
	{"wrong type symmetric", head + "  - quantize:\n      recipe:\n        default: {weight: int8, mode: weight_only, symmetric: no}\n" + tail,
		[]wantDiag{d("6:63", "quantize.recipe.default.symmetric: expected true or false, got the string \"no\"")}},
	{"bad recipe name", head + "  - quantize: {recipe: dynamic_int9}\n" + tail,
		[]wantDiag{d("4:24", `unknown recipe "dynamic_int9"`, `did you mean "dynamic_int8"?`, "valid: none, dynamic_int8, weight_only_int8, fp16, dynamic_int4_block32")}},
	{"bad scheme in slot", head + "  - quantize:\n      recipe: {attention: int4}\n" + tail,
		[]wantDiag{d("5:27", `quantize.recipe.attention: unknown scheme "int4"; valid: none, dynamic_int8, weight_only_int8, weight_only_int8_asym, fp16, dynamic_int4_block32`)}},
	{"block size 48 by name", head + "  - quantize: {recipe: dynamic_int4_block48}\n" + tail,
		[]wantDiag{d("4:24", "block size 48: must be a multiple of 32, at least 32")}},
	{"block size 16 by name in a slot", head + "  - quantize:\n      recipe:\n        feedforward: {all: dynamic_int4_block16}\n" + tail,
		[]wantDiag{d("6:28", "quantize.recipe.feedforward.all:", "block size 16: must be a multiple of 32, at least 32")}},
	{"block size 48 in a mapping", head + "  - quantize:\n      recipe:\n        default: {weight: int4, mode: dynamic_range, block_size: 48}\n" + tail,
		[]wantDiag{d("6:66", "quantize.recipe.default.block_size: block size 48: must be a multiple of 32, at least 32")}},
	{"block size 16 as granularity", head + "  - quantize:\n      recipe:\n        default: {weight: int4, mode: dynamic_range, granularity: BLOCKWISE_16}\n" + tail,
		[]wantDiag{d("6:67", "quantize.recipe.default.granularity: block size 16: must be a multiple of 32, at least 32")}},
	{"unsupported combination", head + "  - quantize:\n      recipe:\n        default: {weight: int4, mode: weight_only, block_size: 32}\n" + tail,
		[]wantDiag{d("6:18", "unsupported combination {weight: int4, mode: weight_only", "valid: dynamic_int8 {", "dynamic_int4_block<B>")}},
	{"int8 activations", head + "  - quantize:\n      recipe:\n        default: {activation: int8, weight: int8, mode: dynamic_range}\n" + tail,
		[]wantDiag{d("6:31", `unsupported activation "int8"`, "fp32")}},
	{"overlapping layer ranges", head + "  - quantize:\n      recipe:\n        attention:\n          layers:\n            \"0-3\": dynamic_int8\n            \"10\": fp16\n            \"3-5\": none\n" + tail,
		[]wantDiag{d("10:13", "quantize.recipe.attention.layers.3-5:", "layers 3-5 overlap layers 0-3 (line 8, column 13)")}},
	{"overlap with a wide earlier range", head + "  - quantize:\n      recipe:\n        attention: {layers: {\"0-10\": fp16, \"2\": fp16, \"5-6\": fp16}}\n" + tail,
		[]wantDiag{d("6:44", "layers 2 overlap layers 0-10"), d("6:55", "layers 5-6 overlap layers 0-10")}},
	{"bad layer keys", head + "  - quantize:\n      recipe:\n        feedforward: {layers: {\"5-2\": fp16, \"-1\": fp16, x: fp16}}\n" + tail,
		[]wantDiag{d("6:32", `layer range "5-2"`), d("6:45", `layer key "-1"`), d("6:57", `layer key "x"`)}},
	{"layers on default", head + "  - quantize:\n      recipe:\n        default: {all: fp16, layers: {\"1\": dynamic_int8}}\n" + tail,
		[]wantDiag{d("6:18", "quantize.recipe.default: takes one scheme", "only for attention and feedforward")}},
	{"duplicate key", head + "  - quantize:\n      recipe:\n        default: fp16\n        default: dynamic_int8\n" + tail,
		[]wantDiag{d("7:9", `quantize.recipe.default: duplicate key "default" (first at line 6, column 9)`)}},
	{"duplicate layer", head + "  - quantize:\n      recipe:\n        attention: {layers: {1: fp16, \"1\": none}}\n" + tail,
		[]wantDiag{d("6:39", `duplicate key "1"`)}},
	{"yaml syntax error", head + "  - quantize: {recipe: fp16\n" + tail,
		[]wantDiag{d("4", "YAML syntax error: did not find expected ',' or '}'")}},
	{"unquoted template in flow mapping", head + "  - quantize: {recipe: fp16}\n  - serialize: {path: out/{name}_{suffix}.tflite}\n",
		[]wantDiag{d("5", "YAML syntax error", `must be quoted: {path: "out/{name}_{suffix}.tflite"}`)}},
	{"tab indentation", "version: 1\nstages:\n\t- load: {path: m.tflite}\n",
		[]wantDiag{d("3", "YAML syntax error: found character that cannot start any token")}},
	{"unknown alias", head + "  - quantize: {recipe: *q}\n" + tail,
		[]wantDiag{d("4:24", "YAML syntax error: unknown anchor 'q' referenced")}},
	{"two documents", head + "  - quantize: {recipe: fp16}\n" + tail + "---\nversion: 1\n",
		[]wantDiag{d("6:1", "a second YAML document")}},
	{"missing load", "version: 1\nstages:\n  - quantize: {recipe: fp16}\n" + tail,
		[]wantDiag{d("3:3", "stages: no load stage", "- load: {path: model.tflite}")}},
	{"load not first", "version: 1\nstages:\n  - quantize: {recipe: fp16}\n  - load: {path: m.tflite}\n" + tail,
		[]wantDiag{d("4:5", "load must come before quantize (line 3)")}},
	{"missing serialize", head + "  - quantize: {recipe: fp16}\n  - verify:\n",
		[]wantDiag{d("3:3", "no serialize stage", "serialize: {path: out/{name}_{suffix}.tflite}")}},
	{"missing quantize", head + tail,
		[]wantDiag{d("3:3", "no quantize stage", "the preset none")}},
	{"serialize before verify", head + "  - quantize: {recipe: fp16}\n" + tail + "  - verify: {}\n",
		[]wantDiag{d("6:5", "verify must come before serialize (line 5)")}},
	{"two loads", head + "  - load: {path: other.tflite}\n  - quantize: {recipe: fp16}\n" + tail,
		[]wantDiag{d("4:5", "a second load stage (the first is at line 3)")}},
	{"stage with two keys", head + "  - quantize: {recipe: fp16}\n    verify: {}\n" + tail,
		[]wantDiag{d("4:5", "stages[1]: a stage is a mapping with exactly one key", "2 keys (quantize, verify)")}},
	{"stage as a string", head + "  - quantize: {recipe: fp16}\n  - verify\n" + tail,
		[]wantDiag{d("5:5", "stages[2]: a stage is a one-key mapping", `got the string "verify"`)}},
	{"output path equal to input", head + "  - quantize: {recipe: fp16}\n  - serialize: {path: ./sub/../model.tflite}\n",
		[]wantDiag{d("5:23", "serialize.path: the output", "is the input model (load.path)")}},
	{"output template equal to input", "version: 1\nname: model\nstages:\n  - load: {path: model_q8.tflite}\n  - quantize: {recipe: dynamic_int8}\n  - serialize: {path: '{name}_{suffix}.tflite'}\n",
		[]wantDiag{d("6:23", `the output "jobs/model_q8.tflite" is the input model`)}},
	{"output equal to input even if quantize is broken", head + "  - quantize: {recipe: nope}\n  - serialize: {path: model.tflite}\n",
		[]wantDiag{d("4:24", `unknown recipe "nope"`, `did you mean "none"?`), d("5:23", "is the input model")}},
	{"several recipes without suffix", head + "  - quantize: {recipes: [dynamic_int8, fp16]}\n  - serialize: {path: 'out/{name}.tflite'}\n",
		[]wantDiag{d("5:23", "serialize.path: with 2 recipes the path must contain {suffix}")}},
	{"several recipes with the same suffix", head + "  - quantize: {recipes: [dynamic_int8, full_int8_dynamic_recipe, {default: fp16}, {default: fp16}]}\n  - serialize: {path: 'out/{suffix}.tflite'}\n",
		[]wantDiag{d("4:40", "quantize.recipes[1]: suffix q8 is also the suffix of quantize.recipes[0] (dynamic_int8)"),
			d("4:83", "quantize.recipes[3]: suffix custom is also the suffix of quantize.recipes[2]")}},
	{"bad scales", head + "  - quantize: {recipe: fp16, scales: best}\n" + tail,
		[]wantDiag{d("4:38", `quantize.scales: unknown value "best"`, "minmax, search, calibrated")}},
	{"searched int8", head + "  - quantize:\n      recipe: {default: {scheme: dynamic_int8, scales: search}}\n" + tail,
		[]wantDiag{d("5:56", "search applies to int4 blockwise schemes only; dynamic_int8 keeps its min-max scales")}},
	{"bad recipe scales", head + "  - quantize:\n      recipe: {scales: maybe, default: dynamic_int4_block32}\n" + tail,
		[]wantDiag{d("5:24", `quantize.recipe.scales: unknown value "maybe"`)}},
	{"calibration samples 0", head + "  - quantize: {recipe: fp16, calibration: {samples: 0, seq: 70000}}\n" + tail,
		[]wantDiag{d("4:53", "samples 0: want 1 to 65536"), d("4:61", "seq 70000: want 1 to 65536")}},
	{"calibration unknown key", head + "  - quantize: {recipe: fp16, calibration: {sample: 3}}\n" + tail,
		[]wantDiag{d("4:44", `unknown key "sample" (did you mean "samples"?)`)}},
	{"calibration text and inputs", head + "  - quantize: {recipe: fp16, calibration: {text: a.txt, tokenizer: t.model, inputs: a.jsonl}}\n" + tail,
		[]wantDiag{d("4:43", "text and inputs: give one")}},
	{"calibration text without tokenizer", head + "  - quantize: {recipe: fp16, calibration: {text: a.txt}}\n" + tail,
		[]wantDiag{d("4:43", "text needs tokenizer")}},
	{"calibration tokenizer without text", head + "  - quantize: {recipe: fp16, calibration: {tokenizer: t.model}}\n" + tail,
		[]wantDiag{d("4:43", "tokenizer is for text")}},
	{"recipe and recipes", head + "  - quantize: {recipe: fp16, recipes: [fp16]}\n" + tail,
		[]wantDiag{d("4:30", "recipe and recipes are exclusive")}},
	{"no recipe", head + "  - quantize: {}\n" + tail,
		[]wantDiag{d("4:15", "missing key recipe")}},
	{"empty custom recipe", head + "  - quantize: {recipe: {name: x}}\n" + tail,
		[]wantDiag{d("4:24", "the recipe sets no slot")}},
	{"bad placeholder", head + "  - quantize: {recipe: fp16}\n  - serialize: {path: 'out/{model}.tflite'}\n",
		[]wantDiag{d("5:23", `unknown placeholder "{model}"; valid: {name}, {suffix}`)}},
	{"unclosed placeholder", head + "  - quantize: {recipe: fp16}\n  - serialize: {path: 'out/{name.tflite'}\n",
		[]wantDiag{d("5:23", "unclosed {")}},
	{"folder as output", head + "  - quantize: {recipe: fp16}\n  - serialize: {path: out/}\n",
		[]wantDiag{d("5:23", "names a folder")}},
	{"bad layout", head + "  - quantize: {recipe: fp16}\n  - serialize: {path: o.tflite, layout: packed}\n",
		[]wantDiag{d("5:41", `serialize.layout: unknown value "packed"; valid: auto, inline, offset`)}},
	{"accuracy without a bound", head + "  - quantize: {recipe: fp16}\n  - verify: {accuracy: {samples: 2}}\n" + tail,
		[]wantDiag{d("5:24", "verify.accuracy: no bound: set at least one of max_kl, min_top1, max_rel_l2, max_ppl_ratio")}},
	{"perplexity without text", head + "  - quantize: {recipe: fp16}\n  - verify: {accuracy: {max_ppl_ratio: 1.1}}\n" + tail,
		[]wantDiag{d("5:24", "max_ppl_ratio measures perplexity on a text")}},
	{"perplexity ratio below 1", head + "  - quantize: {recipe: fp16}\n  - verify: {accuracy: {text: a.txt, tokenizer: t.json, max_ppl_ratio: 0.5}}\n" + tail,
		[]wantDiag{d("5:72", "max_ppl_ratio: 0.5: a bound on the quantized model's perplexity")}},
	{"accuracy text without tokenizer", head + "  - quantize: {recipe: fp16}\n  - verify: {accuracy: {text: a.txt, max_kl: 1}}\n" + tail,
		[]wantDiag{d("5:24", "text needs tokenizer")}},
	{"bad accuracy values", head + "  - quantize: {recipe: fp16}\n  - verify:\n      accuracy: {samples: 0, seq: x, max_kl: -1, min_top1: 90, max_rel_l2: .nan, top5: 1}\n" + tail,
		[]wantDiag{d("6:27", "verify.accuracy.samples: 0: want between 1 and"), d("6:35", "verify.accuracy.seq: expected an integer"),
			d("6:46", "verify.accuracy.max_kl: -1: a bound on a distance is not negative"), d("6:60", "verify.accuracy.min_top1: 90: a fraction of positions, between 0 and 1"),
			d("6:76", "verify.accuracy.max_rel_l2: expected a finite number"), d("6:82", `verify.accuracy: unknown key "top5"`)}},
	{"accuracy not a mapping", head + "  - quantize: {recipe: fp16}\n  - verify: {accuracy: strict}\n" + tail,
		[]wantDiag{d("5:24", "verify.accuracy: expected a mapping")}},
	{"bad on_mismatch", head + "  - quantize: {recipe: fp16}\n  - verify: {on_mismatch: skip}\n" + tail,
		[]wantDiag{d("5:27", `verify.on_mismatch: unknown value "skip"; valid: fail, fallback`)}},
	{"bad regex", head + "  - annotate:\n      rules:\n        - {role: attention, match: 'attn_(?P<layer>\\d+'}\n  - quantize: {recipe: fp16}\n" + tail,
		[]wantDiag{d("6:36", "annotate.rules[0].match: invalid regular expression (Go RE2 syntax): missing closing )")}},
	{"perl-only regex", head + "  - annotate:\n      rules:\n        - {role: attention, match: '(?=attn)'}\n  - quantize: {recipe: fp16}\n" + tail,
		[]wantDiag{d("6:36", "invalid regular expression", "invalid or unsupported Perl syntax")}},
	{"bad role", head + "  - annotate:\n      rules:\n        - {role: lm_head, match: 'logits'}\n        - {role: atention, match: 'a'}\n  - quantize: {recipe: fp16}\n" + tail,
		[]wantDiag{d("6:18", "lm_head is not a user role"), d("7:18", `unknown role "atention"`, `did you mean "attention"?`)}},
	{"rule without match", head + "  - annotate:\n      rules:\n        - {role: attention}\n  - quantize: {recipe: fp16}\n" + tail,
		[]wantDiag{d("6:11", "annotate.rules[0]: a rule needs role and match")}},
	{"bad op name", head + "  - annotate:\n      rules:\n        - {role: attention, match: a, ops: [FULLY CONNECTED]}\n  - quantize: {recipe: fp16}\n" + tail,
		[]wantDiag{d("6:45", `annotate.rules[0].ops[0]: "FULLY CONNECTED" is not an op name`)}},
	{"version 2", "version: 2\nstages:\n  - load: {path: m.tflite}\n  - wibble: {}\n",
		[]wantDiag{d("1:10", "version: unsupported version 2; this qpipe reads version 1")}},
	{"missing version", "stages:\n  - load: {path: m.tflite}\n  - quantize: {recipe: fp16}\n" + tail,
		[]wantDiag{d("1:1", "missing key version")}},
	{"bad name", "version: 1\nname: ../x\nstages:\n  - load: {path: m.tflite}\n  - quantize: {recipe: fp16}\n" + tail,
		[]wantDiag{d("2:7", `name: "../x": the name goes into file names`)}},
	{"bad suffix", head + "  - quantize: {recipe: {suffix: 'a/b', default: fp16}}\n" + tail,
		[]wantDiag{d("4:33", `quantize.recipe.suffix: "a/b": use letters, digits`)}},
	{"merge key", head + "  - quantize:\n      recipe:\n        <<: {default: fp16}\n" + tail,
		[]wantDiag{d("6:9", "merge keys (<<) are not supported")}},
	{"empty file", "", []wantDiag{d("1:1", "empty job file")}},
	{"not a mapping", "- load: {path: m.tflite}\n", []wantDiag{d("1:1", "expected a mapping, got a list")}},
}

func TestParseJobErrors(t *testing.T) {
	for _, c := range badJobs {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseJob("jobs/bad.yaml", []byte(c.src))
			checkDiags(t, "jobs/bad.yaml", err, c.want)
		})
	}
}

// TestParseJobManyProblems plants a problem in every stage and expects each
// one reported, in file order.
func TestParseJobManyProblems(t *testing.T) {
	src := `version: 1
name: demo
colour: blue
stages:
  - load: {path: demo.tflite, mmap: true}
  - annotate:
      rules:
        - {role: attention, match: 'attn_(', ops: FULLY_CONNECTED}
  - quantize:
      recipe:
        default: fp16
        attention: dynamic_int4_block48
        feedforward:
          all: {weight: int4, mode: dynamic_range, block_size: 16}
          layers: {"0-3": dynamic_int8, "2": none}
  - verify: {on_mismatch: maybe}
  - serialize: {path: demo.tflite}
`
	_, err := ParseJob("many.yaml", []byte(src))
	checkDiags(t, "many.yaml", err, []wantDiag{
		d("3:1", `unknown key "colour"`),
		d("5:31", `load: unknown key "mmap"`),
		d("8:36", "annotate.rules[0].match: invalid regular expression", "missing closing )"),
		d("12:20", "quantize.recipe.attention:", "block size 48"),
		d("14:64", "quantize.recipe.feedforward.all.block_size: block size 16"),
		d("15:41", "layers 2 overlap layers 0-3 (line 15, column 20)"),
		d("16:27", `verify.on_mismatch: unknown value "maybe"`),
		d("17:23", "is the input model"),
	})
}

func TestParseJobAliases(t *testing.T) {
	// An alias to a scalar anchored in another recipe.
	src := head + `  - quantize:
      recipes:
        - {suffix: a, default: &q fp16, attention: dynamic_int8}
        - {suffix: b, default: *q}
  - serialize: {path: 'o_{suffix}.tflite'}
`
	j, err := ParseJob("a.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if got := j.Quantize().Recipes[1].Resolve(RoleDefault, -1).String(); got != "fp16" {
		t.Errorf("aliased default = %s", got)
	}

	// Aliases are followed at most maxAliases times per file, so nested or
	// repeated aliases cannot make the walker do unbounded work.
	var b strings.Builder
	b.WriteString(head + "  - quantize:\n      recipe:\n        feedforward:\n          layers:\n")
	b.WriteString("            \"0\": &s {weight: int8, mode: dynamic_range}\n")
	for i := 1; i <= maxAliases+5; i++ {
		fmt.Fprintf(&b, "            \"%d\": *s\n", i)
	}
	b.WriteString(tail)
	_, err = ParseJob("bomb.yaml", []byte(b.String()))
	checkDiags(t, "bomb.yaml", err, []wantDiag{d(fmt.Sprintf("%d:21", 8+maxAliases+1), "more than 1000 alias expansions")})

	// A self-referencing anchor must not loop.
	_, err = ParseJob("loop.yaml", []byte("version: 1\nstages: &s [*s]\n"))
	if err == nil {
		t.Error("self-referencing anchor accepted")
	}
}

func TestParseJobDefaults(t *testing.T) {
	j, err := ParseJob(filepath.Join("deep", "dir", "my.job.yaml"), []byte(head+"  - quantize: {recipe: none}\n  - verify:\n  - serialize:\n      path: '{name}.{suffix}'\n      layout: auto\n"))
	if err != nil {
		t.Fatal(err)
	}
	if j.Name != "my.job" || j.Dir != filepath.Join("deep", "dir") {
		t.Errorf("name %q dir %q", j.Name, j.Dir)
	}
	if v := j.Verify(); v == nil || v.OnMismatch != OnMismatchFail {
		t.Errorf("verify %+v", v)
	}
	if a := j.Annotate(); a != nil {
		t.Errorf("annotate %+v", a)
	}
	if s := j.Serialize(); s.Layout != LayoutAuto {
		t.Errorf("layout %q", s.Layout)
	}
	if got, want := j.Outputs()[0].Path, filepath.Join("deep", "dir", "my.job.f32"); got != want {
		t.Errorf("output %s, want %s", got, want)
	}
	if got := j.Load().Path; got != filepath.Join("deep", "dir", "model.tflite") {
		t.Errorf("load path %s", got)
	}
	if r := j.Quantize().Recipes[0]; r.Resolve(RoleEmbedding, -1) != nil || r.Resolve(RoleAttention, 2) != nil {
		t.Error("the none preset quantizes something")
	}
}

func TestLoadJob(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "j.yaml")
	if err := os.WriteFile(path, []byte(head+"  - quantize: {recipe: fp16}\n"+tail), 0o644); err != nil {
		t.Fatal(err)
	}
	j, err := LoadJob(path)
	if err != nil {
		t.Fatal(err)
	}
	if j.Load().Path != filepath.Join(dir, "model.tflite") || j.Name != "j" {
		t.Errorf("load %s name %s", j.Load().Path, j.Name)
	}
	if _, err := LoadJob(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: %v", err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte("#"+strings.Repeat("x", MaxJobSize)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadJob(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("big file: %v", err)
	}
}

// TestJobScales: quantize.scales, a recipe's scales, a scheme's scales and
// the calibration settings reach the parsed job.
func TestJobScales(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "j.yaml")
	text := head + `  - quantize:
      scales: search
      calibration: {samples: 8, seq: 16, inputs: data/in.jsonl}
      recipes:
        - dynamic_int4_block32
        - {suffix: mix, scales: calibrated, default: dynamic_int4_block64, attention: {layers: {"1-2": {scheme: dynamic_int4_block32, scales: minmax}}}}
` + "  - serialize: {path: 'out/{suffix}.tflite'}\n"
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	j, err := LoadJob(path)
	if err != nil {
		t.Fatal(err)
	}
	q := j.Quantize()
	if q.Scales != ScalesSearch || q.Calibration == nil || q.Calibration.Samples != 8 || q.Calibration.Seq != 16 || q.Calibration.Inputs != filepath.Join(dir, "data", "in.jsonl") {
		t.Fatalf("quantize: scales %q, calibration %+v", q.Scales, q.Calibration)
	}
	if r := q.Recipes[0]; r.Scales != "" {
		t.Errorf("preset recipe scales %q", r.Scales)
	}
	r := q.Recipes[1]
	if r.Scales != ScalesCalibrated || r.Default.All.Scales != "" {
		t.Errorf("recipe scales %q, default scheme scales %q", r.Scales, r.Default.All.Scales)
	}
	if s := r.Resolve(RoleAttention, 1); s == nil || s.Name != "dynamic_int4_block32" || s.Scales != ScalesMinMax {
		t.Errorf("attention layer 1: %+v", s)
	}
}

// TestExamples parses every job file in examples/ and checks that each
// preset has its own example.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "examples", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range files {
		j, err := LoadJob(f)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if len(j.Warnings) > 0 {
			t.Errorf("%s: warnings %v", f, j.Warnings)
		}
		if got, want := j.Load().Path, filepath.Join("..", "testdata", "models", "tiny_decoder.tflite"); got != want {
			t.Errorf("%s: loads %s, want %s", f, got, want)
		}
		for _, o := range j.Outputs() {
			if want := filepath.Join("..", "out", "tiny_decoder_"+o.Recipe.Suffix+".tflite"); o.Path != want {
				t.Errorf("%s: writes %s, want %s", f, o.Path, want)
			}
		}
		base := strings.TrimSuffix(filepath.Base(f), ".yaml")
		seen[base] = true
		if p, err := Preset(base); err == nil {
			if rs := j.Quantize().Recipes; len(rs) != 1 || rs[0].Name != p.Name {
				t.Errorf("%s: recipes %v, want the preset %s", f, rs, p.Name)
			}
		}
	}
	for _, p := range Presets() {
		if !seen[p.Name] {
			t.Errorf("no examples/%s.yaml", p.Name)
		}
	}
	for _, name := range []string{"custom_recipe", "release"} {
		if !seen[name] {
			t.Errorf("no examples/%s.yaml", name)
		}
	}
}

// TestJobCalibrationText: calibration's text and tokenizer resolve against
// the job's folder.
func TestJobCalibrationText(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "j.yaml")
	text := head + "  - quantize: {recipe: fp16, calibration: {text: data/a.txt, tokenizer: tok.model}}\n" + tail
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	j, err := LoadJob(path)
	if err != nil {
		t.Fatal(err)
	}
	if c := j.Quantize().Calibration; c.Text != filepath.Join(dir, "data", "a.txt") || c.Tokenizer != filepath.Join(dir, "tok.model") || c.Inputs != "" {
		t.Fatalf("calibration %+v", c)
	}
}
