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
// error stays within MaxKL. Exactly one of the two is set.
type Budget struct {
	Size  int64   // bytes of the output file
	MaxKL float64 // mean KL divergence of the logits, in nats
	// Candidates narrows the schemes a role may get (RoleDefault: the
	// roles not listed); nil entries take DefaultBudgetCandidates.
	Candidates map[Role][]*Scheme
	// Samples, Seq and Seed select the inputs the sensitivity is measured
	// on (as qpipe eval takes them; 0 = the defaults).
	Samples int
	Seq     int
	Seed    int64
	P       Pos
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

var budgetKeys = []string{"size", "max_kl", "candidates", "samples", "seq", "seed"}

// budget decodes quantize.budget.
func (d *decoder) budget(n *yaml.Node, field string) *Budget {
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
		case "max_kl":
			v = d.deref(v)
			x, err := strconv.ParseFloat(v.Value, 64)
			if v.Kind != yaml.ScalarNode || (v.ShortTag() != "!!float" && v.ShortTag() != "!!int") || err != nil || !(x > 0) || math.IsInf(x, 0) {
				d.errorf(v, f, "expected a positive number (mean KL divergence in nats, e.g. 0.02), got %s", describe(v))
				return
			}
			b.MaxKL = x
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
		}
	})
	if len(d.errs) > before {
		return nil
	}
	if (b.Size > 0) == (b.MaxKL > 0) {
		d.errorf(d.deref(n), field, "set exactly one of size (the output's bytes, e.g. 1.2GB) and max_kl (the largest mean KL divergence, e.g. 0.02)")
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
