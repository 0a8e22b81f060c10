package report

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func render(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := HTML(&b, data); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestGolden renders a real run report (the tiny decoder's release job,
// extended by hand with a budget, a failed job and fields the report does
// not know) and compares it with the page checked in.
func TestGolden(t *testing.T) {
	data, err := os.ReadFile("testdata/run.json")
	if err != nil {
		t.Fatal(err)
	}
	got := render(t, data)
	golden := filepath.Join("testdata", "run.html")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("report differs from %s (go test ./report -update to accept)", golden)
	}
}

// TestDeterministic: the page depends on the JSON alone.
func TestDeterministic(t *testing.T) {
	data, err := os.ReadFile("testdata/run.json")
	if err != nil {
		t.Fatal(err)
	}
	first := render(t, data)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	for i := 0; i < 3; i++ {
		if !bytes.Equal(render(t, data), first) {
			t.Fatal("two renderings of the same report differ")
		}
	}
}

// checkCarriesAll fails t unless every number and every string of the
// run report is on the page.
func checkCarriesAll(t *testing.T, runJSON, page []byte) {
	t.Helper()
	missing, err := Missing(runJSON, page)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("not on the page: %s", m)
	}
}

func TestCarriesEveryNumber(t *testing.T) {
	data, err := os.ReadFile("testdata/run.json")
	if err != nil {
		t.Fatal(err)
	}
	checkCarriesAll(t, data, render(t, data))
}

// TestCarriesCatchesLoss makes sure the check above can fail.
func TestCarriesCatchesLoss(t *testing.T) {
	page := render(t, []byte(`{"jobs":[{"name":"a","file":"a.yaml","status":"ok","error":"","seconds":1.5,"outputs":[]}]}`))
	missing, err := Missing([]byte(`{"jobs":[{"seconds":1.25, "name": "zebra"}]}`), page)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(missing)
	if want := []string{`.jobs[0].name = "zebra"`, ".jobs[0].seconds = 1.25"}; !slices.Equal(missing, want) {
		t.Errorf("missing = %q, want %q", missing, want)
	}
}

// TestSelfContained: no scripts, nothing fetched, hostile names escaped.
func TestSelfContained(t *testing.T) {
	data, err := os.ReadFile("testdata/run.json")
	if err != nil {
		t.Fatal(err)
	}
	page := string(render(t, data))
	for _, bad := range []string{"<script", "src=", "http://", "https://", "@import", "url(", "<b>job</b>"} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
	if !strings.HasPrefix(page, "<!doctype html>") {
		t.Error("not an HTML document")
	}
	if !strings.Contains(page, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Error("the hostile tensor name is not shown escaped")
	}
}

func TestBadReports(t *testing.T) {
	for _, tc := range []struct{ name, data, want string }{
		{"empty", ``, "unexpected end of JSON input"},
		{"syntax", "{\"jobs\": [\n  {\"name\": \"a\",,}]}", "line 2, column 16"},
		{"not a run", `{"plans": []}`, `no "jobs"`},
		{"jobs not a list", `{"jobs": 3}`, "line 1, column 10"},
		{"wrong type", "{\"jobs\": [{\"outputs\": [{\"bytes\": \"many\"}]}]}", "line 1, column 39"},
		{"tensor type", `{"jobs": [{"outputs": [{"tensors": [{"layer": "x"}]}]}]}`, "line 1, column 49"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := HTML(&bytes.Buffer{}, []byte(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestSparseReports: reports with little in them still render.
func TestSparseReports(t *testing.T) {
	for _, data := range []string{
		`{"jobs": []}`,
		`{"jobs": [null]}`,
		`{"jobs": [{"outputs": [{"recipe": "x", "tensors": [{"tensor": "t", "sqnr_db": 999}]}]}]}`,
		`{"jobs": [{"outputs": [{"tensors": [{"tensor": "t", "layer": 3, "sqnr_db": 20}, {"tensor": "u", "layer": 3, "sqnr_db": 20}], "sizes": [{"role": "zz", "scheme": "s", "bytes_in": 0, "bytes_out": 0}]}]}]}`,
		`{"jobs": [{"outputs": [{"budget": {"max_kl": 0.1, "presets": [{"recipe": "a", "bytes": 1, "kl": 0}]}}]}]}`,
	} {
		checkCarriesAll(t, []byte(data), render(t, []byte(data)))
	}
}

func FuzzHTML(f *testing.F) {
	if data, err := os.ReadFile("testdata/run.json"); err == nil {
		f.Add(data)
	}
	f.Add([]byte(`{"jobs": [{"outputs": [{"tensors": [{"layer": -5, "sqnr_db": -999, "sensitivity_kl": 1e-300}], "budget": {"size_bytes": -1, "predicted_kl": 1e300}}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var b bytes.Buffer
		if err := HTML(&b, data); err != nil {
			return
		}
		if !bytes.HasPrefix(b.Bytes(), []byte("<!doctype html>")) {
			t.Fatal("not an HTML page")
		}
	})
}

// TestLongRunsAndPerfectWeights: only an SQNR of 999 (the report's
// stand-in for a perfect reconstruction) reads ∞; a run of 1511 s reads
// 1511.00 s.
func TestLongRunsAndPerfectWeights(t *testing.T) {
	page := string(render(t, []byte(`{"jobs": [{"name": "j", "seconds": 1511, "outputs": [{"recipe": "r", "tensors": [{"tensor": "t", "sqnr_db": 999}]}]}]}`)))
	if !strings.Contains(page, ">1511.00</span> s") {
		t.Error("a long run time is not shown as seconds")
	}
	if !strings.Contains(page, ">∞</span> dB") {
		t.Error("a perfect tensor's SQNR is not shown as ∞")
	}
}
