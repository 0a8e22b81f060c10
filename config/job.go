package config

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/qpipe/qpipe/internal/evaluate"
	"go.yaml.in/yaml/v3"
)

// MaxJobSize is the largest job file LoadJob and ParseJob accept, in bytes.
const MaxJobSize = 1 << 20

// Stage kinds, in the order a job must list them.
const (
	KindLoad      = "load"
	KindAnnotate  = "annotate"
	KindQuantize  = "quantize"
	KindVerify    = "verify"
	KindSerialize = "serialize"
)

var stageKinds = []string{KindLoad, KindAnnotate, KindQuantize, KindVerify, KindSerialize}

// Values of VerifyStage.OnMismatch.
const (
	// OnMismatchFail fails the job when a tensor breaks a constraint.
	OnMismatchFail = "fail"
	// OnMismatchFallback gives such a tensor the next scheme that fits
	// and reports it.
	OnMismatchFallback = "fallback"
)

// Values of SerializeStage.Layout.
const (
	LayoutAuto   = ""       // the writer decides (written "auto" or left out)
	LayoutInline = "inline" // bytes inside the flatbuffer
	LayoutOffset = "offset" // bytes after the flatbuffer (models over 2 GB)
)

// Job is a decoded job file. A Job returned by ParseJob or LoadJob has
// exactly one load stage first, one quantize stage, at most one of each
// other kind, in the order load, annotate, quantize, verify, serialize, and
// a serialize stage last.
type Job struct {
	Path string // the job file as given to LoadJob/ParseJob
	Dir  string // filepath.Dir(Path); relative paths in the file are resolved against it
	Name string // `name:`, by default the file name without its extension

	Stages []Stage // in file order

	// Warnings are problems that do not stop the job (deprecated recipe
	// names); the caller should log them.
	Warnings Diagnostics
}

// Stage is one step of a job. The concrete types are *LoadStage,
// *AnnotateStage, *QuantizeStage, *VerifyStage and *SerializeStage.
type Stage interface {
	Kind() string // one of the Kind constants
	Pos() Pos     // where the stage's key is written
}

// LoadStage reads the float model.
type LoadStage struct {
	Path string // resolved against Job.Dir
	P    Pos
}

// AnnotateStage adds role rules. They run after the built-in ones; for each
// op the last matching rule wins.
type AnnotateStage struct {
	Rules []Rule
	P     Pos
}

// Rule gives Role to the weights of the ops whose scope (their output
// tensor names joined with ';') Match finds. If Match has a group named
// `layer` ((?P<layer>\d+)), its text is the transformer block index; the
// stage must cope with a capture that is not a number.
type Rule struct {
	Role    Role           // RoleDefault, RoleEmbedding, RoleAttention or RoleFeedforward
	Match   *regexp.Regexp // unanchored search, Go RE2 syntax
	Pattern string         // Match as written
	Ops     []string       // upper-case builtin op names (FULLY_CONNECTED, ...); empty = every op
	P       Pos
}

// LayerGroup returns the index of the `layer` capture group in Match, or -1.
func (r Rule) LayerGroup() int { return r.Match.SubexpIndex("layer") }

// QuantizeStage rewrites the weights: one output model per recipe, all
// from the same loaded model.
type QuantizeStage struct {
	Recipes []*Recipe // at least one; their Suffixes are distinct
	// Scales is the scale method of every int4 scheme whose scheme and
	// recipe do not set one (Scheme.Scales); "" means min-max. The command
	// line's --scales replaces it.
	Scales string
	// Calibration configures the pass that gathers activation statistics
	// for `scales: calibrated`; nil means the defaults (DefaultCalibration).
	Calibration *Calibration
	// Budget, when set, chooses the schemes; Recipes is then the one
	// recipe named BudgetRecipe that the budget fills in.
	Budget *Budget
	// Sections gives a LiteRT-LM bundle's TFLiteModel sections their own
	// recipe, by model type ("tf_lite_embedder") or section index ("3"),
	// in place of Recipes' (an index beats a model type); `none` leaves a
	// section byte for byte as it is.
	Sections map[string]*Recipe
	P        Pos
}

// Calibration is `quantize.calibration`: how many inputs to run through the
// float model, and which.
type Calibration struct {
	// Samples is the number of inputs to run; 0 (the default) lets the
	// model decide: enough for 512 token positions, 8 to 64 (64 for a
	// model without token inputs, and the first 64 lines of Inputs).
	Samples int
	Seq     int // tokens per random input of a dynamic-length token-id model (default 64)
	// Inputs is a file of pre-tokenized inputs (JSON lines, as qpipe eval
	// reads them), resolved against Job.Dir; "" means random inputs.
	Inputs string
	// Text is a text file tokenized with Tokenizer (a SentencePiece model
	// or a tokenizer.json) and cut into windows of the model's sequence
	// length, as qpipe eval --text does; both resolved against Job.Dir.
	// Text and Inputs exclude each other.
	Text, Tokenizer string
	P               Pos
}

// DefaultCalibration is the calibration of a job that sets none.
func DefaultCalibration() *Calibration { return &Calibration{Seq: 64} }

// VerifyStage checks the quantized tensors against the runtime's rules
// and, with Accuracy, the quantized model's outputs against the float
// model's.
type VerifyStage struct {
	OnMismatch string // OnMismatchFail (default) or OnMismatchFallback
	// Accuracy is nil unless the stage has an accuracy: mapping.
	Accuracy *AccuracyGate
	P        Pos
}

// AccuracyGate bounds how far each output model's outputs may be from the
// float model's on the same inputs (internal/evaluate). The bounds left
// out (nil) are not checked; at least one is set.
type AccuracyGate struct {
	// Samples is the number of generated input samples (default
	// evaluate.DefaultSamples, as qpipe eval).
	Samples int
	// Seq is the token sequence length; 0 = the model's own.
	Seq int
	// MaxKL bounds the mean KL(softmax(float) ‖ softmax(quantized)) of
	// every logits output, in nats.
	MaxKL *float64
	// MinTop1 is the smallest fraction of positions whose top token must
	// agree, for every logits output.
	MinTop1 *float64
	// MaxRelL2 bounds the relative L2 error of every output.
	MaxRelL2 *float64
	// Text and Tokenizer, when set, make the samples the text's windows
	// (as qpipe eval --text; Samples of them), resolved against Job.Dir.
	Text, Tokenizer string
	// MaxPPLRatio bounds the quantized model's next-token perplexity on
	// Text over the float model's, for every logits output (needs Text).
	MaxPPLRatio *float64
	P           Pos
}

// SerializeStage writes each output model.
type SerializeStage struct {
	// Path is a template resolved against Job.Dir; {name} expands to
	// Job.Name and {suffix} to the recipe's Suffix (see OutputPath).
	Path   string
	Layout string // LayoutAuto, LayoutInline or LayoutOffset
	// Section picks, by model type or index, the one section of a
	// LiteRT-LM bundle a .tflite path receives ("": the only one).
	Section string
	P       Pos

	pathPos Pos // where the path value is written
}

func (*LoadStage) Kind() string      { return KindLoad }
func (*AnnotateStage) Kind() string  { return KindAnnotate }
func (*QuantizeStage) Kind() string  { return KindQuantize }
func (*VerifyStage) Kind() string    { return KindVerify }
func (*SerializeStage) Kind() string { return KindSerialize }

func (s *LoadStage) Pos() Pos      { return s.P }
func (s *AnnotateStage) Pos() Pos  { return s.P }
func (s *QuantizeStage) Pos() Pos  { return s.P }
func (s *VerifyStage) Pos() Pos    { return s.P }
func (s *SerializeStage) Pos() Pos { return s.P }

// OutputPath expands the path template for a job name and a recipe suffix.
func (s *SerializeStage) OutputPath(name, suffix string) string {
	return strings.NewReplacer("{name}", name, "{suffix}", suffix).Replace(s.Path)
}

// Output is one model a job writes.
type Output struct {
	Recipe *Recipe
	Path   string
}

// Outputs lists the models the job writes: one per recipe, in order.
func (j *Job) Outputs() []Output {
	q, s := j.Quantize(), j.Serialize()
	if q == nil || s == nil {
		return nil
	}
	out := make([]Output, len(q.Recipes))
	for i, r := range q.Recipes {
		out[i] = Output{Recipe: r, Path: s.OutputPath(j.Name, r.Suffix)}
	}
	return out
}

// Load returns the job's load stage (nil only for a Job not built by this
// package). The other accessors return nil when the stage is absent.
func (j *Job) Load() *LoadStage { return stageOf[*LoadStage](j) }

// Annotate returns the annotate stage, or nil.
func (j *Job) Annotate() *AnnotateStage { return stageOf[*AnnotateStage](j) }

// Quantize returns the quantize stage.
func (j *Job) Quantize() *QuantizeStage { return stageOf[*QuantizeStage](j) }

// Verify returns the verify stage, or nil.
func (j *Job) Verify() *VerifyStage { return stageOf[*VerifyStage](j) }

// Serialize returns the serialize stage.
func (j *Job) Serialize() *SerializeStage { return stageOf[*SerializeStage](j) }

func stageOf[T Stage](j *Job) T {
	for _, s := range j.Stages {
		if t, ok := s.(T); ok {
			return t
		}
	}
	var zero T
	return zero
}

// LoadJob reads and decodes a job file. See ParseJob.
func LoadJob(path string) (*Job, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: read job file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxJobSize+1))
	if err != nil {
		return nil, fmt.Errorf("config: read job file %s: %w", path, err)
	}
	return ParseJob(path, data)
}

// ParseJob decodes the job file data; path names it in diagnostics and
// anchors its relative paths. Every problem in the file is reported at once,
// as Diagnostics.
func ParseJob(path string, data []byte) (*Job, error) {
	if len(data) > MaxJobSize {
		return nil, Diagnostics{{Pos: Pos{File: path}, Msg: fmt.Sprintf("job file larger than %d bytes", MaxJobSize)}}
	}
	root, err := parseYAML(path, data)
	if err != nil {
		return nil, err
	}
	if root == nil {
		return nil, Diagnostics{{Pos: Pos{File: path, Line: 1, Col: 1}, Msg: "empty job file; it needs `version: 1` and `stages:`"}}
	}
	d := &decoder{file: path, cat: defaultCatalog}
	j := &Job{Path: path, Dir: filepath.Dir(path), Name: defaultName(path)}
	d.job(root, j)
	if len(d.errs) > 0 {
		return nil, d.errs.Sorted()
	}
	j.Warnings = d.warns.Sorted()
	return j, nil
}

// defaultName is the job file's name without its extension.
func defaultName(path string) string {
	base := filepath.Base(path)
	name := strings.TrimSuffix(base, filepath.Ext(base))
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) {
		return "job"
	}
	return name
}

func (d *decoder) job(root *yaml.Node, j *Job) {
	var version, name, stages *yaml.Node
	if !d.mapping(root, "", []string{"version", "name", "stages"}, false, func(key string, k, v *yaml.Node) {
		switch key {
		case "version":
			version = v
		case "name":
			name = v
		case "stages":
			stages = v
		}
	}) {
		return
	}
	if version == nil {
		d.errorf(root, "", "missing key version; write `version: 1` at the top")
	} else if v, ok := d.integer(version, "version"); ok && v != 1 {
		// A newer file's other keys would only add noise.
		d.errorf(d.deref(version), "version", "unsupported version %d; this qpipe reads version 1", v)
		return
	}
	if name != nil {
		if s, ok := d.nonEmpty(name, "name"); ok {
			if s == "." || s == ".." || strings.ContainsAny(s, "/\\\x00") || len(s) > 200 {
				d.errorf(d.deref(name), "name", "%s: the name goes into file names; it must not contain / or \\ nor be . or ..", quote(s))
			} else {
				j.Name = s
			}
		}
	}
	if stages == nil {
		d.errorf(root, "", "missing key stages; list load, quantize and serialize stages")
		return
	}
	d.stages(stages, j)
}

// stageEntry is a stage as written, whether or not its contents decoded.
type stageEntry struct {
	kind  string
	key   *yaml.Node
	stage Stage // as far as it decoded
	ok    bool  // its contents had no problem
}

func (d *decoder) stages(n *yaml.Node, j *Job) {
	var entries []stageEntry
	malformed := false // an item whose kind could not be told
	if !d.list(n, "stages", func(i int, item *yaml.Node) {
		if e, ok := d.stageItem(item, index("stages", i), j); ok {
			entries = append(entries, e)
		} else {
			malformed = true
		}
	}) {
		return
	}
	n = d.deref(n)
	if len(n.Content) == 0 {
		d.errorf(n, "stages", "no stages; a job needs at least load, quantize and serialize")
		return
	}
	rank := map[string]int{}
	for i, k := range stageKinds {
		rank[k] = i
	}
	first := map[string]stageEntry{}
	var latest *stageEntry // the entry of highest rank so far
	for i := range entries {
		e := &entries[i]
		if prev, dup := first[e.kind]; dup {
			d.errorf(e.key, "", "a second %s stage (the first is at line %d); a job has at most one of each", e.kind, prev.key.Line)
			continue
		}
		first[e.kind] = *e
		if latest != nil && rank[e.kind] < rank[latest.kind] {
			d.errorf(e.key, "", "%s must come before %s (line %d); the order is load, annotate, quantize, verify, serialize", e.kind, latest.kind, latest.key.Line)
			continue
		}
		latest = e
		if e.ok {
			j.Stages = append(j.Stages, e.stage)
		}
	}
	// A malformed item may well be the missing stage: do not add noise.
	for _, req := range []struct{ kind, hint string }{
		{KindLoad, "start with `- load: {path: model.tflite}`"},
		{KindQuantize, "add `- quantize: {recipe: dynamic_int8}` (the preset none writes the model unquantized)"},
		{KindSerialize, "end with `- serialize: {path: out/{name}_{suffix}.tflite}`"},
	} {
		if _, ok := first[req.kind]; !ok && !malformed {
			d.errorf(n, "stages", "no %s stage; %s", req.kind, req.hint)
		}
	}
	var l *LoadStage
	var q *QuantizeStage
	var s *SerializeStage
	if e, ok := first[KindLoad]; ok {
		l = e.stage.(*LoadStage)
	}
	if e, ok := first[KindQuantize]; ok && e.ok {
		q = e.stage.(*QuantizeStage)
	}
	if e, ok := first[KindSerialize]; ok {
		s = e.stage.(*SerializeStage)
	}
	d.checkOutputs(j.Name, l, q, s)
}

// stageItem decodes one `- kind: {...}` item.
func (d *decoder) stageItem(item *yaml.Node, field string, j *Job) (stageEntry, bool) {
	if item = d.deref(item); item == nil {
		return stageEntry{}, false
	}
	if item.Kind != yaml.MappingNode {
		d.errorf(item, field, "a stage is a one-key mapping such as `- load: {path: model.tflite}`, got %s", describe(item))
		return stageEntry{}, false
	}
	if len(item.Content) != 2 {
		keys := d.keys(item)
		d.errorf(item, field, "a stage is a mapping with exactly one key (%s), got %d keys (%s); start each stage with its own '-'",
			strings.Join(stageKinds, ", "), len(item.Content)/2, strings.Join(keys, ", "))
		return stageEntry{}, false
	}
	k, v := d.deref(item.Content[0]), item.Content[1]
	if k == nil {
		return stageEntry{}, false
	}
	kind := k.Value
	if k.Kind != yaml.ScalarNode || !contains(stageKinds, kind) {
		d.errorf(k, field, "unknown stage %s%s; valid: %s", quote(kind), suggest(kind, stageKinds), strings.Join(stageKinds, ", "))
		return stageEntry{}, false
	}
	before := len(d.errs)
	var st Stage
	p := d.at(k)
	switch kind {
	case KindLoad:
		st = d.loadStage(v, p, j)
	case KindAnnotate:
		st = d.annotateStage(v, p)
	case KindQuantize:
		st = d.quantizeStage(v, p, j)
	case KindVerify:
		st = d.verifyStage(v, p, j.Dir)
	case KindSerialize:
		st = d.serializeStage(v, p, j)
	}
	return stageEntry{kind: kind, key: k, stage: st, ok: len(d.errs) == before}, true
}

// resolvePath anchors a relative path at the job file's folder.
func resolvePath(dir, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(dir, p)
}

func (d *decoder) loadStage(n *yaml.Node, p Pos, j *Job) *LoadStage {
	st := &LoadStage{P: p}
	d.mapping(n, KindLoad, []string{"path"}, false, func(key string, k, v *yaml.Node) {
		if s, ok := d.nonEmpty(v, "load.path"); ok {
			st.Path = resolvePath(j.Dir, s)
		}
	})
	if n := d.deref(n); n != nil && n.Kind == yaml.MappingNode && !contains(d.keys(n), "path") {
		d.errorf(n, KindLoad, "missing key path (the float .tflite model, relative to the job file)")
	}
	return st
}

var opNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)

func (d *decoder) annotateStage(n *yaml.Node, p Pos) *AnnotateStage {
	st := &AnnotateStage{P: p}
	var rules *yaml.Node
	ok := d.mapping(n, KindAnnotate, []string{"rules"}, false, func(key string, k, v *yaml.Node) { rules = v })
	if !ok {
		return st
	}
	if rules == nil {
		d.errorf(d.deref(n), KindAnnotate, "missing key rules (a list of {role, match} rules)")
		return st
	}
	d.list(rules, "annotate.rules", func(i int, item *yaml.Node) {
		if r, ok := d.rule(item, index("annotate.rules", i)); ok {
			st.Rules = append(st.Rules, r)
		}
	})
	if r := d.deref(rules); r != nil && r.Kind == yaml.SequenceNode && len(r.Content) == 0 {
		d.errorf(r, "annotate.rules", "no rules; add {role, match} rules or remove the annotate stage")
	}
	return st
}

func (d *decoder) rule(n *yaml.Node, field string) (Rule, bool) {
	r := Rule{}
	before := len(d.errs)
	var roleSet bool
	if !d.mapping(n, field, []string{"role", "match", "ops"}, false, func(key string, k, v *yaml.Node) {
		f := join(field, key)
		switch key {
		case "role":
			s, ok := d.str(v, f)
			switch {
			case !ok:
			case s == string(RoleLMHead):
				d.errorf(d.deref(v), f, "lm_head is not a user role: the tied logits layer follows the embedding recipe by itself; use embedding or default")
			case !contains(roleNames(), s):
				d.errorf(d.deref(v), f, "unknown role %s%s; valid: %s", quote(s), suggest(s, roleNames()), strings.Join(roleNames(), ", "))
			default:
				r.Role, roleSet = Role(s), true
			}
		case "match":
			s, ok := d.nonEmpty(v, f)
			if !ok {
				return
			}
			re, err := regexp.Compile(s)
			if err != nil {
				msg := strings.TrimPrefix(err.Error(), "error parsing regexp: ")
				d.errorf(d.deref(v), f, "invalid regular expression (Go RE2 syntax): %s", msg)
				return
			}
			r.Match, r.Pattern = re, s
		case "ops":
			r.Ops = d.ops(v, f)
		}
	}) {
		return r, false
	}
	if len(d.errs) > before {
		return r, false
	}
	if !roleSet || r.Match == nil {
		d.errorf(d.deref(n), field, "a rule needs role and match")
		return r, false
	}
	r.P = d.at(d.deref(n))
	return r, true
}

// ops decodes an op filter: one name or a list of names, upper-cased.
func (d *decoder) ops(n *yaml.Node, field string) []string {
	n = d.deref(n)
	if n == nil {
		return nil
	}
	one := func(item *yaml.Node, f string) (string, bool) {
		s, ok := d.str(item, f)
		if ok && !opNameRE.MatchString(s) {
			d.errorf(d.deref(item), f, "%s is not an op name; write builtin op names such as FULLY_CONNECTED", quote(s))
			return "", false
		}
		return strings.ToUpper(s), ok
	}
	if n.Kind == yaml.ScalarNode {
		if s, ok := one(n, field); ok {
			return []string{s}
		}
		return nil
	}
	var out []string
	d.list(n, field, func(i int, item *yaml.Node) {
		if s, ok := one(item, index(field, i)); ok {
			out = append(out, s)
		}
	})
	if n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
		d.errorf(n, field, "empty list; leave ops out to match every op")
	}
	return out
}

func (d *decoder) quantizeStage(n *yaml.Node, p Pos, j *Job) *QuantizeStage {
	st := &QuantizeStage{P: p}
	var one, many, manyKey, budget, budgetKey *yaml.Node
	if !d.mapping(n, KindQuantize, []string{"recipe", "recipes", "scales", "calibration", "budget", "sections"}, false, func(key string, k, v *yaml.Node) {
		switch key {
		case "sections":
			st.Sections = map[string]*Recipe{}
			d.mapping(v, "quantize.sections", nil, true, func(sel string, k, v *yaml.Node) {
				if r := d.recipe(v, join("quantize.sections", sel)); r != nil {
					st.Sections[sel] = r
				}
			})
		case "recipe":
			one = v
		case "recipes":
			many, manyKey = v, k
		case "scales":
			st.Scales, _ = d.enum(v, "quantize.scales", ScaleMethods)
		case "calibration":
			st.Calibration = d.calibration(v, j)
		case "budget":
			budget, budgetKey = v, k
		}
	}) {
		return st
	}
	if budget != nil {
		if one != nil || many != nil {
			d.errorf(budgetKey, KindQuantize, "budget chooses the schemes itself: leave recipe and recipes out (narrow its choice with budget.candidates)")
			return st
		}
		if st.Budget = d.budget(budget, "quantize.budget", j.Dir); st.Budget != nil {
			st.Recipes = []*Recipe{{Name: BudgetRecipe, Suffix: BudgetRecipe, P: st.Budget.P}}
		}
		return st
	}
	switch {
	case one != nil && many != nil:
		d.errorf(manyKey, KindQuantize, "recipe and recipes are exclusive; put every recipe in the recipes list")
		return st
	case one != nil:
		if r := d.recipe(one, "quantize.recipe"); r != nil {
			st.Recipes = []*Recipe{r}
		}
		return st
	case many == nil:
		d.errorf(d.deref(n), KindQuantize, "missing key recipe (a preset name or a mapping), recipes (a list of them) or budget (a size or an error to meet)")
		return st
	}
	fields := []string{}
	d.list(many, "quantize.recipes", func(i int, item *yaml.Node) {
		f := index("quantize.recipes", i)
		r := d.recipe(item, f)
		if r == nil {
			return
		}
		for j, other := range st.Recipes {
			if other.Suffix == r.Suffix {
				d.errs = append(d.errs, Diagnostic{Pos: r.P, Field: f,
					Msg: fmt.Sprintf("suffix %s is also the suffix of %s (%s); the outputs would collide (give a written-out recipe its own `suffix:`)", r.Suffix, fields[j], other.Name)})
				return
			}
		}
		st.Recipes = append(st.Recipes, r)
		fields = append(fields, f)
	})
	if m := d.deref(many); m != nil && m.Kind == yaml.SequenceNode && len(m.Content) == 0 {
		d.errorf(m, "quantize.recipes", "empty list; name at least one recipe")
	}
	return st
}

// maxCalibration bounds samples and seq: a calibration pass is meant to
// take seconds to minutes, not to be a benchmark.
const maxCalibration = 1 << 16

// calibration decodes quantize.calibration: {samples: N, seq: N, inputs:
// FILE} or {..., text: FILE, tokenizer: FILE}.
func (d *decoder) calibration(n *yaml.Node, j *Job) *Calibration {
	const field = "quantize.calibration"
	c := DefaultCalibration()
	c.P = d.at(d.deref(n))
	d.mapping(n, field, []string{"samples", "seq", "inputs", "text", "tokenizer"}, false, func(key string, k, v *yaml.Node) {
		f := join(field, key)
		switch key {
		case "samples", "seq":
			x, ok := d.integer(v, f)
			if !ok {
				return
			}
			if x < 1 || x > maxCalibration {
				d.errorf(d.deref(v), f, "%s %d: want 1 to %d", key, x, maxCalibration)
				return
			}
			if key == "samples" {
				c.Samples = x
			} else {
				c.Seq = x
			}
		case "inputs":
			if s, ok := d.nonEmpty(v, f); ok {
				c.Inputs = resolvePath(j.Dir, s)
			}
		case "text", "tokenizer":
			d.textKey(v, f, key, j.Dir, &c.Text, &c.Tokenizer)
		}
	})
	if c.Text != "" && c.Inputs != "" {
		d.errorf(d.deref(n), field, "text and inputs: give one")
	}
	d.checkText(n, field, c.Text, c.Tokenizer)
	return c
}

// textKey decodes a text: FILE or tokenizer: FILE key (resolved against
// dir) into *text or *tok.
func (d *decoder) textKey(v *yaml.Node, f, key, dir string, text, tok *string) {
	if s, ok := d.nonEmpty(v, f); ok {
		if key == "text" {
			*text = resolvePath(dir, s)
		} else {
			*tok = resolvePath(dir, s)
		}
	}
}

// checkText reports a text without a tokenizer or a tokenizer without a
// text.
func (d *decoder) checkText(n *yaml.Node, field, text, tok string) {
	switch {
	case text != "" && tok == "":
		d.errorf(d.deref(n), field, "text needs tokenizer: FILE (a SentencePiece model or a tokenizer.json)")
	case text == "" && tok != "":
		d.errorf(d.deref(n), field, "tokenizer is for text: FILE")
	}
}

func (d *decoder) verifyStage(n *yaml.Node, p Pos, dir string) *VerifyStage {
	st := &VerifyStage{OnMismatch: OnMismatchFail, P: p}
	d.mapping(n, KindVerify, []string{"on_mismatch", "accuracy"}, true, func(key string, k, v *yaml.Node) {
		switch key {
		case "on_mismatch":
			if s, ok := d.enum(v, "verify.on_mismatch", []string{OnMismatchFail, OnMismatchFallback}); ok {
				st.OnMismatch = s
			}
		case "accuracy":
			st.Accuracy = d.accuracy(v, d.at(k), dir)
		}
	})
	return st
}

// accuracy decodes verify.accuracy.
func (d *decoder) accuracy(n *yaml.Node, p Pos, dir string) *AccuracyGate {
	const field = "verify.accuracy"
	g := &AccuracyGate{Samples: evaluate.DefaultSamples, P: p}
	keys := []string{"samples", "seq", "max_kl", "min_top1", "max_rel_l2", "text", "tokenizer", "max_ppl_ratio"}
	before := len(d.errs)
	if !d.mapping(n, field, keys, false, func(key string, k, v *yaml.Node) {
		f := join(field, key)
		switch key {
		case "samples", "seq":
			x, ok := d.integer(v, f)
			switch {
			case !ok:
			case x < 1 || x > 1<<20:
				d.errorf(d.deref(v), f, "%d: want between 1 and %d", x, 1<<20)
			case key == "samples":
				g.Samples = x
			default:
				g.Seq = x
			}
		case "max_kl", "max_rel_l2":
			if x, ok := d.number(v, f); ok {
				if x < 0 {
					d.errorf(d.deref(v), f, "%g: a bound on a distance is not negative", x)
					return
				}
				if key == "max_kl" {
					g.MaxKL = &x
				} else {
					g.MaxRelL2 = &x
				}
			}
		case "text", "tokenizer":
			d.textKey(v, f, key, dir, &g.Text, &g.Tokenizer)
		case "max_ppl_ratio":
			if x, ok := d.number(v, f); ok {
				if !(x >= 1) {
					d.errorf(d.deref(v), f, "%g: a bound on the quantized model's perplexity over the float model's, at least 1 (1.05 = 5 %% worse)", x)
					return
				}
				g.MaxPPLRatio = &x
			}
		case "min_top1":
			if x, ok := d.number(v, f); ok {
				if x < 0 || x > 1 {
					d.errorf(d.deref(v), f, "%g: a fraction of positions, between 0 and 1 (0.9 = 90 %%)", x)
					return
				}
				g.MinTop1 = &x
			}
		}
	}) {
		return nil
	}
	if len(d.errs) == before && g.MaxKL == nil && g.MinTop1 == nil && g.MaxRelL2 == nil && g.MaxPPLRatio == nil {
		d.errorf(d.deref(n), field, "no bound: set at least one of max_kl, min_top1, max_rel_l2, max_ppl_ratio")
	}
	if g.MaxPPLRatio != nil && g.Text == "" {
		d.errorf(d.deref(n), field, "max_ppl_ratio measures perplexity on a text: set text: FILE and tokenizer: FILE")
	}
	d.checkText(n, field, g.Text, g.Tokenizer)
	return g
}

func (d *decoder) serializeStage(n *yaml.Node, p Pos, j *Job) *SerializeStage {
	st := &SerializeStage{P: p}
	d.mapping(n, KindSerialize, []string{"path", "layout", "section"}, false, func(key string, k, v *yaml.Node) {
		f := join(KindSerialize, key)
		switch key {
		case "section": // a model type, or an index written as a number
			if x := d.deref(v); x != nil && x.Kind == yaml.ScalarNode && x.Tag == "!!int" {
				st.Section = x.Value
			} else {
				st.Section, _ = d.nonEmpty(v, f)
			}
		case "path":
			s, ok := d.nonEmpty(v, f)
			if !ok {
				return
			}
			if msg := checkTemplate(s); msg != "" {
				d.errorf(d.deref(v), f, "%s", msg)
				return
			}
			st.Path, st.pathPos = resolvePath(j.Dir, s), d.at(d.deref(v))
		case "layout":
			if s, ok := d.enum(v, f, []string{"auto", LayoutInline, LayoutOffset}); ok && s != "auto" {
				st.Layout = s
			}
		}
	})
	if n := d.deref(n); n != nil && n.Kind == yaml.MappingNode && !contains(d.keys(n), "path") {
		d.errorf(n, KindSerialize, "missing key path (where to write, e.g. out/{name}_{suffix}.tflite)")
	}
	return st
}

// checkTemplate returns why an output path template is unusable, or "".
func checkTemplate(t string) string {
	if strings.HasSuffix(t, "/") || strings.HasSuffix(t, `\`) {
		return fmt.Sprintf("%s names a folder; end the path with a file name", quote(t))
	}
	for i := 0; i < len(t); i++ {
		switch t[i] {
		case '{':
			end := strings.IndexByte(t[i:], '}')
			if end < 0 {
				return fmt.Sprintf("unclosed { in %s; placeholders are {name} and {suffix}", quote(t))
			}
			if ph := t[i : i+end+1]; ph != "{name}" && ph != "{suffix}" {
				return fmt.Sprintf("unknown placeholder %s; valid: {name}, {suffix}", quote(ph))
			}
			i += end
		case '}':
			return fmt.Sprintf("stray } in %s; placeholders are {name} and {suffix}", quote(t))
		}
	}
	return ""
}

// checkOutputs checks the serialize path against the recipes and the input.
// It runs even when the stages had other problems, as far as it can: l and
// s may be partly decoded (empty paths), q is nil unless it fully decoded.
func (d *decoder) checkOutputs(name string, l *LoadStage, q *QuantizeStage, s *SerializeStage) {
	if s == nil || s.Path == "" {
		return
	}
	var suffixes []string
	if q != nil {
		for _, r := range q.Recipes {
			suffixes = append(suffixes, r.Suffix)
		}
	} else if !strings.Contains(s.Path, "{") {
		suffixes = []string{""} // the path does not depend on the recipe
	}
	if len(suffixes) > 1 && !strings.Contains(s.Path, "{suffix}") {
		d.errs = append(d.errs, Diagnostic{Pos: s.pathPos, Field: "serialize.path",
			Msg: fmt.Sprintf("with %d recipes the path must contain {suffix}, or every output would be written to the same file", len(suffixes))})
		return
	}
	if l == nil || l.Path == "" {
		return
	}
	for _, suffix := range suffixes {
		if out := s.OutputPath(name, suffix); samePath(out, l.Path) {
			d.errs = append(d.errs, Diagnostic{Pos: s.pathPos, Field: "serialize.path",
				Msg: fmt.Sprintf("the output %s is the input model (load.path); qpipe never overwrites its input", quote(out))})
			return
		}
	}
}

// samePath compares two paths lexically, after making them absolute. The
// serialize stage still checks the files themselves (links, case-folding
// file systems).
func samePath(a, b string) bool {
	if aa, err := filepath.Abs(a); err == nil {
		a = aa
	}
	if bb, err := filepath.Abs(b); err == nil {
		b = bb
	}
	return filepath.Clean(a) == filepath.Clean(b)
}
