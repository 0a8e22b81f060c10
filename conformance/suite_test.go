package conformance

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/litert"
	"github.com/qpipe/qpipe/internal/modelinput"
	"github.com/qpipe/qpipe/internal/tflite"
)

var update = flag.Bool("update", false, "rewrite REPORT.md from this run's measurements")

// modelsDir holds the test models: every *.tflite there is run.
const modelsDir = "../testdata/models"

// seeds are the input seeds every signature of every model runs with.
var seeds = []int64{1, 2, 3}

// workDir holds the quantized models of one run of the test binary.
var workDir string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "qpipe-conformance-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	workDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// outputs are the outputs of one model file on a model's inputs:
// signature key → seed index → output tensors.
type outputs map[string][][]litert.Tensor

// model is one test model and its float runs.
type model struct {
	name, path string
	class      Class
	weightOps  int
	// refused is the runtime's error when it cannot run the float model;
	// the presets are then still applied and the quantized files checked
	// statically.
	refused string
	sigs    []litert.Signature
	vocab   int
	inputs  map[string][][]litert.Tensor // signature key → seed index → inputs
	float   outputs
}

func (m *model) short() string { return strings.TrimSuffix(m.name, ".tflite") }

// result is one model × preset.
type result struct {
	model  *model
	preset string
	family Family
	bound  Bound
	// notApplicable is qpipe's refusal when the preset does not fit.
	notApplicable string
	quantized     int // weights the preset quantized
	quant, ref    string
	refOut        outputs
	// vsFloat and vsRef are the quantized model's errors; refVsFloat is
	// the dequantized reference's own distance from the float model (the
	// cost of rounding the weights alone).
	vsFloat, vsRef, refVsFloat Errors
	problems                   []string // outputs that cannot be compared
	// quantOut are the quantized model's outputs on the runtime.
	quantOut outputs
	reads    []WeightRead
}

func (r *result) name() string { return r.model.short() + "/" + r.preset }

// ran reports whether the outputs were compared.
func (r *result) ran() bool { return r.notApplicable == "" && r.model.refused == "" }

// verdict lists why the quantized model does not conform: broken bounds,
// outputs that cannot be compared, too-old op versions and non-zero
// zero points of hybrid weights.
func (r *result) verdict() []string {
	var bad []string
	if r.ran() {
		bad = append(bad, r.problems...)
		bad = append(bad, r.bound.Check(r.vsFloat, r.vsRef)...)
	}
	bad = append(bad, CheckOpVersions(r.reads)...)
	bad = append(bad, CheckHybridZeroPoints(r.reads)...)
	return bad
}

// suite is every measurement, made once per test binary.
type suite struct {
	runner  *litert.Runner
	models  []*model
	results []*result

	mu      sync.Mutex
	mutants map[string][]*mutantResult // by mutant name
}

var shared struct {
	once  sync.Once
	suite *suite
	err   error
}

// measure returns the suite's measurements, making them on first use.
func measure(t *testing.T) *suite {
	t.Helper()
	r := litert.Require(t)
	shared.once.Do(func() { shared.suite, shared.err = build(r) })
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.suite
}

func build(r *litert.Runner) (*suite, error) {
	s := &suite{runner: r, mutants: map[string][]*mutantResult{}}
	paths, err := filepath.Glob(filepath.Join(modelsDir, "*.tflite"))
	if err != nil || len(paths) == 0 {
		return nil, fmt.Errorf("no test models in %s (%v)", modelsDir, err)
	}
	presets := config.Presets()
	for _, path := range paths {
		m, err := s.loadModel(path)
		if err != nil {
			return nil, err
		}
		s.models = append(s.models, m)
		for _, p := range presets {
			if slices.Contains(staticPresets, p.Name) {
				continue // measured by staticResults (static_test.go)
			}
			res, err := s.runCase(m, p.Name)
			if err != nil {
				return nil, fmt.Errorf("%s/%s: %w", m.short(), p.Name, err)
			}
			s.results = append(s.results, res)
		}
	}
	return s, nil
}

// loadModel classifies the model, asks the runtime for its signatures and
// runs the float model on every seed.
func (s *suite) loadModel(path string) (*model, error) {
	m := &model{name: filepath.Base(path), path: path, inputs: map[string][][]litert.Tensor{}, float: outputs{}}
	tm, err := tflite.Open(path)
	if err != nil {
		return nil, err
	}
	m.vocab = modelinput.VocabSize(tm.Meta)
	m.class, m.weightOps = ClassOf(tm)
	tm.Close()
	info, err := s.runner.Info(path)
	if err != nil {
		m.refused = err.Error()
		return m, nil
	}
	m.sigs = info.Signatures
	if len(m.sigs) == 0 {
		m.sigs = []litert.Signature{{Inputs: info.Inputs, Outputs: info.Outputs}}
	}
	for _, sig := range m.sigs {
		for _, seed := range seeds {
			m.inputs[sig.Key] = append(m.inputs[sig.Key], litert.RandomTensors(sig.Inputs, seed, m.vocab))
		}
	}
	if m.float, err = s.run(m, path); err != nil {
		m.refused = err.Error()
	}
	return m, nil
}

// runCase quantizes m with preset (the quantized model and its dequantized
// reference), reads the quantized weights back and, when the runtime runs
// m, compares the three models' outputs.
func (s *suite) runCase(m *model, preset string) (*result, error) {
	rec, err := config.Preset(preset)
	if err != nil {
		return nil, err
	}
	family, err := FamilyOf(rec)
	if err != nil {
		return nil, err
	}
	return s.runRecipe(m, rec, family)
}

// runRecipe is runCase for any recipe, whose outputs err like family's.
func (s *suite) runRecipe(m *model, rec *config.Recipe, family Family) (*result, error) {
	res := &result{model: m, preset: rec.Name, family: family}
	var err error
	if res.bound, err = BoundFor(res.family, m.class); err != nil {
		return nil, err
	}
	base := filepath.Join(workDir, m.short()+"_"+rec.Suffix)
	res.quant, res.ref = base+".tflite", base+"_ref.tflite"
	ctx := context.Background()
	n, err := QuantizeRecipe(ctx, m.path, res.quant, rec, false)
	if errors.Is(err, ErrNotApplicable) {
		res.notApplicable = notFitReason(err)
		return res, nil
	}
	if err != nil {
		return nil, err
	}
	res.quantized = n
	if _, err := QuantizeRecipe(ctx, m.path, res.ref, rec, true); err != nil {
		return nil, fmt.Errorf("the dequantized reference: %w", err)
	}
	if res.reads, err = readWeights(m.path, res.quant); err != nil {
		return nil, err
	}
	if m.refused != "" {
		return res, nil
	}
	if res.refOut, err = s.run(m, res.ref); err != nil {
		return nil, fmt.Errorf("the dequantized reference: %w", err)
	}
	quantOut, err := s.run(m, res.quant)
	if err != nil {
		return nil, err
	}
	res.quantOut = quantOut
	c := compare(m, res.refOut, m.float)
	res.refVsFloat = c.Errors()
	res.problems = append(res.problems, prefixed("reference vs float: ", c.Problems)...)
	var problems []string
	res.vsFloat, res.vsRef, problems = res.measure(quantOut)
	res.problems = append(res.problems, problems...)
	return res, nil
}

// measure compares out, the outputs of a model quantized like r (r's own
// or a mutant of it), with the float model's and the reference's.
func (r *result) measure(out outputs) (vsFloat, vsRef Errors, problems []string) {
	c := compare(r.model, out, r.model.float)
	vsFloat, problems = c.Errors(), prefixed("vs float: ", c.Problems)
	c = compare(r.model, out, r.refOut)
	return vsFloat, c.Errors(), append(problems, prefixed("vs reference: ", c.Problems)...)
}

// run runs the model file path on m's inputs: every signature, every seed.
func (s *suite) run(m *model, path string) (outputs, error) {
	out := outputs{}
	for _, sig := range m.sigs {
		for i, in := range m.inputs[sig.Key] {
			o, err := s.runner.RunSignature(path, sig.Key, in)
			if err != nil {
				return nil, fmt.Errorf("signature %q, seed %d: %w", sig.Key, seeds[i], err)
			}
			out[sig.Key] = append(out[sig.Key], o)
		}
	}
	return out, nil
}

// compare measures got against want, both runs of m's inputs.
func compare(m *model, got, want outputs) *Comparison {
	c := &Comparison{}
	for _, sig := range m.sigs {
		for i := range want[sig.Key] {
			c.Add(sig.Key, got[sig.Key][i], want[sig.Key][i])
		}
	}
	return c
}

func prefixed(p string, list []string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = p + s
	}
	return out
}

// notFitLine matches one weight line of qpipe's refusal: `subgraph S tensor
// T ("NAME"): SCHEME: why`.
var notFitLine = regexp.MustCompile(`^subgraph \d+ tensor \d+ \((".*")\): [a-z0-9_]+: (.*)$`)

// notFitReason shortens qpipe's refusal to its weight lines, each as
// `"NAME": why`.
func notFitReason(err error) string {
	var weights []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if m := notFitLine.FindStringSubmatch(strings.TrimSpace(l)); m != nil {
			weights = append(weights, m[1]+": "+m[2])
		}
	}
	if len(weights) == 0 {
		return firstLine(err.Error())
	}
	return strings.Join(weights, "; ")
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func readWeights(in, out string) ([]WeightRead, error) {
	im, err := tflite.Open(in)
	if err != nil {
		return nil, err
	}
	defer im.Close()
	om, err := tflite.Open(out)
	if err != nil {
		return nil, err
	}
	defer om.Close()
	return WeightReads(im, om), nil
}
