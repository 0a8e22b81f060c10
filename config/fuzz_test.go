package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseJob feeds arbitrary bytes to ParseJob: it must never panic, and
// its result must be either a complete job or positioned Diagnostics.
func FuzzParseJob(f *testing.F) {
	f.Add([]byte(issueJob))
	for _, c := range badJobs {
		f.Add([]byte(c.src))
	}
	files, _ := filepath.Glob(filepath.Join("..", "examples", "*.yaml"))
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		j, err := ParseJob("f.yaml", data)
		if err != nil {
			var ds Diagnostics
			if !errors.As(err, &ds) || len(ds) == 0 {
				t.Fatalf("error %T %v is not Diagnostics", err, err)
			}
			for _, d := range ds {
				if d.Pos.File != "f.yaml" || d.Msg == "" {
					t.Fatalf("bad diagnostic %+v", d)
				}
			}
			return
		}
		if j.Load() == nil || j.Quantize() == nil || j.Serialize() == nil || j.Stages[0] != Stage(j.Load()) {
			t.Fatalf("incomplete job: %s", dumpJob(j))
		}
		outs := j.Outputs()
		if len(outs) != len(j.Quantize().Recipes) || len(outs) == 0 {
			t.Fatalf("%d outputs for %d recipes", len(outs), len(j.Quantize().Recipes))
		}
		seen := map[string]bool{}
		for _, o := range outs {
			if seen[o.Path] || samePath(o.Path, j.Load().Path) || strings.ContainsAny(o.Path, "{}") && !strings.Contains(j.Serialize().Path, o.Path) {
				t.Fatalf("bad output %s", o.Path)
			}
			seen[o.Path] = true
			for _, role := range append(UserRoles, RoleLMHead) {
				for layer := -1; layer < 3; layer++ {
					if s := o.Recipe.Resolve(role, layer); s != nil && (s.IsNone() || s.Name == "") {
						t.Fatalf("Resolve gave %+v", s)
					}
				}
			}
			_ = o.Recipe.String()
		}
		_ = dumpJob(j)
	})
}

// FuzzParseScheme checks that every accepted scheme is canonical: its name
// parses back to the same fields.
func FuzzParseScheme(f *testing.F) {
	for _, s := range []string{"dynamic_int8", "none", "dynamic_int4_block96", "{weight: int4, mode: dynamic_range, block_size: 64}",
		"{weight: fp16, mode: weight_only}", "{weight: int8, mode: weight_only, symmetric: false}", "{weight: int4, mode: dynamic_range, granularity: blockwise_32}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		s, err := ParseScheme(text)
		if err != nil {
			return
		}
		back, err := ParseScheme(s.Name)
		if err != nil || *back != *s {
			t.Fatalf("%q: %+v does not round-trip through %s: %+v %v", text, *s, s.Name, back, err)
		}
	})
}
