package config

import (
	"path/filepath"
	"strings"
	"testing"
)

func budgetJob(budget string) string {
	return "version: 1\nstages:\n  - load: {path: m.tflite}\n  - quantize:\n      budget:\n" + budget +
		"  - serialize: {path: \"out/{name}_{suffix}.tflite\"}\n"
}

func TestParseBudget(t *testing.T) {
	j, err := ParseJob("jobs/b.yaml", []byte(budgetJob(`        size: 1.2GB
        candidates:
          default: [dynamic_int8, dynamic_int4_block128]
          embedding: [dynamic_int8]
        samples: 4
        seq: 16
        seed: 7
`)))
	if err != nil {
		t.Fatal(err)
	}
	var q *QuantizeStage
	for _, s := range j.Stages {
		if s, ok := s.(*QuantizeStage); ok {
			q = s
		}
	}
	b := q.Budget
	if b == nil || b.Size != 1_200_000_000 || b.MaxKL != 0 || b.Samples != 4 || b.Seq != 16 || b.Seed != 7 {
		t.Fatalf("budget = %+v", b)
	}
	if len(q.Recipes) != 1 || q.Recipes[0].Name != BudgetRecipe || q.Recipes[0].Suffix != BudgetRecipe {
		t.Errorf("recipes = %+v", q.Recipes)
	}
	names := func(ss []*Scheme) string {
		var out []string
		for _, s := range ss {
			out = append(out, s.Name)
		}
		return strings.Join(out, ",")
	}
	for role, want := range map[Role]string{
		RoleEmbedding:   "dynamic_int8",
		RoleLMHead:      "dynamic_int8", // the tied lm_head follows the embedding
		RoleAttention:   "dynamic_int8,dynamic_int4_block128",
		RoleFeedforward: "dynamic_int8,dynamic_int4_block128",
	} {
		if got := names(b.CandidatesFor(role)); got != want {
			t.Errorf("candidates for %s = %s, want %s", role, got, want)
		}
	}
	var defaults []string
	for _, s := range (&Budget{}).CandidatesFor(RoleAttention) {
		if msg := scalesFor(s, s.Scales); msg != "" {
			t.Errorf("default candidate %s: %s", s, msg)
		}
		defaults = append(defaults, s.String())
	}
	if got := strings.Join(defaults, ","); got != strings.Join(DefaultBudgetCandidates, ",") || !strings.Contains(got, "dynamic_int4_block128+search") {
		t.Errorf("default candidates = %s", got)
	}
	// A candidate may carry its scale method: the same scheme with two
	// methods is two candidates.
	j, err = ParseJob("jobs/b.yaml", []byte(budgetJob("        size: 1GB\n        candidates: {default: [dynamic_int4_block32, {scheme: dynamic_int4_block32, scales: search}, {scheme: dynamic_int4_block64, scales: calibrated}]}\n")))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range j.Stages[1].(*QuantizeStage).Budget.CandidatesFor(RoleFeedforward) {
		got = append(got, s.String())
	}
	if want := "dynamic_int4_block32 dynamic_int4_block32+search dynamic_int4_block64+calibrated"; strings.Join(got, " ") != want {
		t.Errorf("candidates with scales = %v, want %s", got, want)
	}
	j, err = ParseJob("jobs/b.yaml", []byte(budgetJob("        max_kl: 0.02\n")))
	if err != nil {
		t.Fatal(err)
	}
	if q := j.Stages[1].(*QuantizeStage); q.Budget.MaxKL != 0.02 || q.Budget.Size != 0 {
		t.Errorf("budget = %+v", q.Budget)
	}
	j, err = ParseJob("jobs/b.yaml", []byte(budgetJob("        max_kl: 0.02\n        text: t/a.txt\n        tokenizer: tok.model\n")))
	if err != nil {
		t.Fatal(err)
	}
	if b := j.Stages[1].(*QuantizeStage).Budget; b.Text != filepath.Join("jobs", "t", "a.txt") || b.Tokenizer != filepath.Join("jobs", "tok.model") {
		t.Errorf("budget text %q, tokenizer %q", b.Text, b.Tokenizer)
	}
}

func TestParseBudgetErrors(t *testing.T) {
	for _, c := range []struct {
		name, budget string
		want         []wantDiag
	}{
		{"both", "        size: 1GB\n        max_kl: 0.1\n", []wantDiag{d("6:9", "exactly one of size")}},
		{"neither", "        samples: 2\n", []wantDiag{d("6:9", "exactly one of size")}},
		{"bad size", "        size: 1.2 parsecs\n", []wantDiag{d("6:15", `size "1.2 parsecs"`, "e.g. 1.2GB")}},
		{"negative kl", "        max_kl: -1\n", []wantDiag{d("6:17", "positive number")}},
		{"kl text", "        max_kl: low\n", []wantDiag{d("6:17", "positive number")}},
		{"zero samples", "        size: 1GB\n        samples: 0\n", []wantDiag{d("7:18", "at least 1")}},
		{"unknown key", "        size: 1GB\n        colour: red\n", []wantDiag{d("7:9", "colour")}},
		{"unknown role", "        size: 1GB\n        candidates: {mlp: [fp16]}\n", []wantDiag{d("7:22", "mlp")}},
		{"unknown scheme", "        size: 1GB\n        candidates: {attention: [int3]}\n", []wantDiag{d("7:34", "int3")}},
		{"empty list", "        size: 1GB\n        candidates: {attention: []}\n", []wantDiag{d("7:33", "empty list")}},
		{"scales on int8", "        size: 1GB\n        candidates: {attention: [{scheme: dynamic_int8, scales: search}]}\n", []wantDiag{d("7:65", "int4 blockwise schemes only")}},
		{"unknown scales", "        size: 1GB\n        candidates: {attention: [{scheme: dynamic_int4_block32, scales: best}]}\n", []wantDiag{d("7:73", "best")}},
		{"text without tokenizer", "        size: 1GB\n        text: a.txt\n", []wantDiag{d("6:9", "text needs tokenizer")}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseJob("jobs/bad.yaml", []byte(budgetJob(c.budget)))
			checkDiags(t, "jobs/bad.yaml", err, c.want)
		})
	}
	src := "version: 1\nstages:\n  - load: {path: m.tflite}\n  - quantize:\n      recipe: fp16\n      budget: {size: 1GB}\n  - serialize: {path: \"o/{name}.tflite\"}\n"
	_, err := ParseJob("jobs/bad.yaml", []byte(src))
	checkDiags(t, "jobs/bad.yaml", err, []wantDiag{d("6:7", "leave recipe and recipes out")})
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"1200": 1200, "1.2GB": 1_200_000_000, "1.2 gb": 1_200_000_000, "850MiB": 850 << 20, "2kB": 2000,
		"1.5KiB": 1536, "3TB": 3_000_000_000_000, "10b": 10,
	} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "GB", "1.2 parsecs", "-5MB", "1e9", "0", "0.5", "99999999999TB", "1..2GB"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q): no error", in)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"1.2GB", "850 MiB", "12", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := ParseSize(s); err == nil && n < 1 {
			t.Fatalf("ParseSize(%q) = %d", s, n)
		}
	})
}
