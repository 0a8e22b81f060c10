package doccheck

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeTree creates files (slash paths → contents) under a temporary root.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, body := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const spec = "# Spec\n\n## 1. One\n\n### 1.2 One two\n\n## 3. Three\n\n```\n## 9. in a code block, not a heading\n```\n"

const readme = "# tool\n\n## Lock files\n\ntext\n\n## Budgets\n\nSee docs/{spec} §3 and {spec} §1.2.\n"

// The fixture trees cite made-up documents. Their names are filled in
// when a tree is written ({spec}, {other}, {gone}), so that no comment of
// this repository cites a document it does not have.
var fixtureNames = strings.NewReplacer("{spec}", "SPEC.md", "{other}", "OTHER.md", "{gone}", "GONE.md")

func TestCheck(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string // Problem strings, in order
	}{
		{
			name: "good citations",
			files: map[string]string{
				"docs/{spec}": spec,
				"README.md":   readme,
				"pkg/a.go": "package pkg\n\n// Wraps a line ({spec}\n// §1.2), lists ({spec} §1, §3; {spec} §1 and §3),\n" +
					"// paths (docs/{spec} §3) and the README (README: Lock files).\n" +
					"// Not ours: https://github.com/x/y/blob/main/{other}, notes.md.\n" +
					"var s = \"§9 in a string is not a comment\"\n",
				"pkg/LOCAL.md":  "## 2. Here\n\nSelf: §2; other: {spec} §3.\n",
				"pkg/b.go":      "package pkg\n\n/* LOCAL.md §2 sits next to this file. */\n",
				"Makefile":      "# (README, Budgets) and {spec} §1\nall:\n",
				".ci/run":       "#!/bin/sh\n# docs/{spec} §1.2\n",
				"testdata/x.md": "{gone} §1 is test data and not scanned\n",
			},
		},
		{
			name: "bad citations",
			files: map[string]string{
				"docs/{spec}": spec,
				"README.md":   readme,
				"pkg/a.go": "package pkg\n\n// Fine ({spec} §1), then a missing section ({spec} §1, §2),\n" +
					"// a section only in a code block ({spec} §9),\n// a missing file ({gone} §1, docs/gone.md) and a bare §3.\n" +
					"func f() {} // README: Guarantees\n",
				"docs/{other}": "## 1. One\n\nSee §4 and [SPEC]({spec}) §1.2, [{spec}]({spec}) §5.\n",
				".ci/run":      "# {spec} §7\n",
			},
			want: []string{
				".ci/run:1: cites {spec} §7, but docs/{spec} has no heading numbered 7",
				"docs/{other}:3: cites {spec} §5, but docs/{spec} has no heading numbered 5",
				"docs/{other}:3: cites §4, but docs/{other} has no heading numbered 4",
				"pkg/a.go:3: cites {spec} §2, but docs/{spec} has no heading numbered 2",
				"pkg/a.go:4: cites {spec} §9, but docs/{spec} has no heading numbered 9",
				"pkg/a.go:5: cites {gone}, which is not in the repository (looked next to the file, at the root and in docs/)",
				"pkg/a.go:5: cites docs/gone.md, which is not in the repository (looked next to the file, at the root and in docs/)",
				"pkg/a.go:5: cites §3 without naming the document",
				`pkg/a.go:6: cites README: "Guarantees", but README.md has no heading that starts it`,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{}
			for name, body := range tc.files {
				files[fixtureNames.Replace(name)] = fixtureNames.Replace(body)
			}
			problems, err := Check(writeTree(t, files))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range problems {
				got = append(got, p.String())
			}
			want := fixtureNames.Replace(strings.Join(tc.want, "\n"))
			if strings.Join(got, "\n") != want {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), want)
			}
		})
	}
}
