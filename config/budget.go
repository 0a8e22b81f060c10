package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Budget asks qpipe to choose each weight's scheme from measurements:
// the least output error within Size bytes, or the smallest output whose
// error stays within MaxKL (metric kl) or MaxRelL2 (metric rel_l2).
// Exactly one of the three is set.
type Budget struct {
	Size     int64   // bytes of the output file
	MaxKL    float64 // mean KL divergence of the logits, in nats
	MaxRelL2 float64 // relative L2 error of the compared outputs
	// Metric is the output error the budget measures: BudgetMetricKL (the
	// mean KL divergence of a logits output) or BudgetMetricRelL2
	// (‖quantized − float‖₂ / ‖float‖₂ over the compared outputs); ""
	// = kl when the model has a recognised logits output, else rel_l2.
	Metric string
	// Output names the output compared ("" = the logits output for kl,
	// every float output of the first signature for rel_l2).
	Output string
	// Candidates narrows the schemes a role may get (RoleDefault: the
	// roles not listed); nil entries take DefaultBudgetCandidates.
	Candidates map[Role][]*Scheme
	// Samples, Seq and Seed select the inputs the sensitivity is measured
	// on (as qpipe eval takes them; 0 = the defaults).
	Samples int
	Seq     int
	Seed    int64
	// Text and Tokenizer, when set, make the samples the text's windows
	// (as qpipe eval --text): the choice samples the first Samples, the
	// held-out ones the windows after them; resolved against Job.Dir.
	Text, Tokenizer string
	P               Pos
}

// DefaultBudgetCandidates are the schemes a budget chooses from unless the
// job narrows them, as Scheme.String prints them (NAME or NAME+SCALES);
// each weight gets only those its ops accept and its shape fits. Every
// int4 block size comes with min-max and with searched scales: at the
// size of uniform dynamic_int4_block128 the searched ones lowered the
// budget's KL on its samples by 19-30 % on three generated decoders, on
// held-out samples on two of them (docs/METHODS.md §2.4).
var DefaultBudgetCandidates = []string{"fp16", "dynamic_int8",
	"dynamic_int4_block32", "dynamic_int4_block32+search", "dynamic_int4_block64", "dynamic_int4_block64+search",
	"dynamic_int4_block128", "dynamic_int4_block128+search", "dynamic_int4_block256", "dynamic_int4_block256+search"}

// The metrics a budget measures.
const (
	BudgetMetricKL    = "kl"
	BudgetMetricRelL2 = "rel_l2"
)

// BudgetRecipe is the recipe name and output suffix of a budget's output.
const BudgetRecipe = "budget"

// CandidatesFor returns the schemes a weight of this role may get.
func (b *Budget) CandidatesFor(role Role) []*Scheme {
	if c, ok := b.Candidates[role]; ok {
		return c
	}
	if role == RoleLMHead {
		if c, ok := b.Candidates[RoleEmbedding]; ok {
			return c
		}
	}
	if c, ok := b.Candidates[RoleDefault]; ok {
		return c
	}
	out := make([]*Scheme, 0, len(DefaultBudgetCandidates))
	for _, c := range DefaultBudgetCandidates {
		name, scales, _ := strings.Cut(c, "+")
		s, _ := defaultCatalog.scheme(name)
		if scales != "" {
			t := *s
			t.Scales = scales
			s = &t
		}
		out = append(out, s)
	}
	return out
}

// ParseSize reads a size in bytes: a plain number, or one with a unit —
// kB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024),
// case-insensitive, an optional space before the unit: 1.2GB, 850 MiB.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := len(t)
	for i > 0 && (t[i-1] < '0' || t[i-1] > '9') && t[i-1] != '.' {
		i--
	}
	num, unit := strings.TrimSpace(t[:i]), strings.ToLower(strings.TrimSpace(t[i:]))
	mult := map[string]float64{"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
		"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}[unit]
	v, err := strconv.ParseFloat(num, 64)
	if mult == 0 || err != nil || num == "" || strings.ContainsAny(num, "eE+-") {
		return 0, fmt.Errorf("size %q: want a number of bytes with an optional unit (kB, MB, GB, KiB, MiB, GiB), e.g. 1.2GB", s)
	}
	b := v * mult
	if b < 1 || b > math.MaxInt64/2 {
		return 0, fmt.Errorf("size %q is out of range", s)
	}
	return int64(math.Floor(b)), nil
}

var budgetKeys = []string{"size", "max_kl", "max_rel_l2", "metric", "output", "candidates", "samples", "seq", "seed", "text", "tokenizer"}

// budget decodes quantize.budget.
func (d *decoder) budget(n *yaml.Node, field, dir string) *Budget {
	b := &Budget{P: d.at(d.deref(n))}
	before := len(d.errs)
	d.mapping(n, field, budgetKeys, false, func(key string, k, v *yaml.Node) {
		f := join(field, key)
		switch key {
		case "size":
			v = d.deref(v)
			if v == nil || v.Kind != yaml.ScalarNode {
				d.errorf(v, f, "expected a size such as 1.2GB, got %s", describe(v))
				return
			}
			size, err := ParseSize(v.Value)
			if err != nil {
				d.errorf(v, f, "%v", err)
				return
			}
			b.Size = size
		case "max_kl", "max_rel_l2":
			v = d.deref(v)
			x, err := strconv.ParseFloat(v.Value, 64)
			if v.Kind != yaml.ScalarNode || (v.ShortTag() != "!!float" && v.ShortTag() != "!!int") || err != nil || !(x > 0) || math.IsInf(x, 0) {
				what := "mean KL divergence in nats, e.g. 0.02"
				if key == "max_rel_l2" {
					what = "relative L2 error of the outputs, e.g. 0.05"
				}
				d.errorf(v, f, "expected a positive number (%s), got %s", what, describe(v))
				return
			}
			if key == "max_kl" {
				b.MaxKL = x
			} else {
				b.MaxRelL2 = x
			}
		case "metric", "output":
			v = d.deref(v)
			if v == nil || v.Kind != yaml.ScalarNode || v.Value == "" {
				d.errorf(v, f, "expected a name, got %s", describe(v))
				return
			}
			if key == "output" {
				b.Output = v.Value
				return
			}
			if err := checkMetricName(v.Value); err != nil {
				d.errorf(v, f, "%v", err)
				return
			}
			b.Metric = v.Value
		case "samples", "seq":
			x, ok := d.integer(v, f)
			if ok && x <= 0 {
				d.errorf(d.deref(v), f, "must be at least 1")
				return
			}
			if key == "samples" {
				b.Samples = x
			} else {
				b.Seq = x
			}
		case "seed":
			x, _ := d.integer(v, f)
			b.Seed = int64(x)
		case "candidates":
			b.Candidates = d.budgetCandidates(v, f)
		case "text", "tokenizer":
			d.textKey(v, f, key, dir, &b.Text, &b.Tokenizer)
		}
	})
	d.checkText(n, field, b.Text, b.Tokenizer)
	if len(d.errs) > before {
		return nil
	}
	set := 0
	for _, on := range []bool{b.Size > 0, b.MaxKL > 0, b.MaxRelL2 > 0} {
		if on {
			set++
		}
	}
	if set != 1 {
		d.errorf(d.deref(n), field, "set exactly one of size (the output's bytes, e.g. 1.2GB), max_kl (the largest mean KL divergence, e.g. 0.02) and max_rel_l2 (the largest relative L2 error of the outputs)")
		return nil
	}
	if err := b.CheckMetric(); err != nil {
		d.errorf(d.deref(n), field, "%v", err)
		return nil
	}
	return b
}

// budgetCandidates decodes {ROLE: [SCHEME, ...]}.
func (d *decoder) budgetCandidates(n *yaml.Node, field string) map[Role][]*Scheme {
	out := map[Role][]*Scheme{}
	d.mapping(n, field, roleNames(), false, func(key string, k, v *yaml.Node) {
		f := join(field, key)
		var list []*Scheme
		before := len(d.errs)
		d.list(v, f, func(i int, item *yaml.Node) {
			if s, ok := d.scheme(item, index(f, i)); ok {
				list = append(list, s)
			}
		})
		if len(list) == 0 && len(d.errs) == before {
			d.errorf(d.deref(v), f, "empty list; name at least one scheme (none keeps the weights float)")
			return
		}
		out[Role(key)] = list
	})
	return out
}

// checkMetricName refuses a metric other than kl and rel_l2.
func checkMetricName(m string) error {
	if m != BudgetMetricKL && m != BudgetMetricRelL2 {
		return fmt.Errorf("unknown metric %q: want kl (mean KL divergence of a logits output) or rel_l2 (relative L2 error of the outputs)", m)
	}
	return nil
}

// FlagBudget is the budget of the command line's flags (--budget-size
// SIZE or --budget-kl KL, with --budget-metric and --budget-output), nil
// when neither bound is set; errors name the flag.
func FlagBudget(size string, maxKL float64, metric, output string) (*Budget, error) {
	if size == "" && maxKL == 0 {
		if metric != "" || output != "" {
			return nil, fmt.Errorf("--budget-metric and --budget-output go with --budget-size or --budget-kl")
		}
		return nil, nil
	}
	if size != "" && maxKL != 0 {
		return nil, fmt.Errorf("--budget-size and --budget-kl are exclusive")
	}
	if maxKL < 0 {
		return nil, fmt.Errorf("--budget-kl must be positive")
	}
	b := &Budget{MaxKL: maxKL, Metric: metric, Output: output}
	if metric != "" {
		if err := checkMetricName(metric); err != nil {
			return nil, fmt.Errorf("--budget-metric: %v", err)
		}
	}
	if err := b.CheckMetric(); err != nil {
		return nil, fmt.Errorf("--budget-kl: %v", err)
	}
	if size != "" {
		n, err := ParseSize(size)
		if err != nil {
			return nil, fmt.Errorf("--budget-size: %v", err)
		}
		b.Size = n
	}
	return b, nil
}

// CheckMetric refuses an error bound of the other metric (max_kl with
// metric rel_l2, max_rel_l2 with metric kl) and, when the bound names the
// metric, sets it.
func (b *Budget) CheckMetric() error {
	switch {
	case b.MaxKL > 0 && b.Metric == BudgetMetricRelL2:
		return fmt.Errorf("max_kl bounds the KL divergence: with metric rel_l2 bound the error with max_rel_l2")
	case b.MaxRelL2 > 0 && b.Metric == BudgetMetricKL:
		return fmt.Errorf("max_rel_l2 bounds the relative L2 error: with metric kl bound the error with max_kl")
	case b.MaxKL > 0:
		b.Metric = BudgetMetricKL
	case b.MaxRelL2 > 0:
		b.Metric = BudgetMetricRelL2
	}
	return nil
}
