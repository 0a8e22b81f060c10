package evaluate

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/qpipe/qpipe/internal/interp"
	"github.com/qpipe/qpipe/internal/modelinput"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

func TestParseSamples(t *testing.T) {
	good := "{\"tokens\": [1, 2, 3]}\n\n  \r\n{\"x\": [[0.5, -1], [2, 3e-1]], \"tokens\": 7}\r\n{\"e\":[]}"
	s, err := ParseSamples(strings.NewReader(good), "in.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 3 || s[0].Line != 1 || s[1].Line != 4 || s[2].Line != 5 {
		t.Fatalf("samples %+v", s)
	}
	if v := s[0].Values["tokens"]; !slices.Equal(v.Shape, []int{3}) || len(v.Nums) != 3 || v.Nums[2] != "3" {
		t.Errorf("tokens %+v", v)
	}
	if v := s[1].Values["x"]; !slices.Equal(v.Shape, []int{2, 2}) || v.Nums[3] != "3e-1" {
		t.Errorf("x %+v", v)
	}
	if v := s[1].Values["tokens"]; v.Shape != nil || v.Nums[0] != "7" {
		t.Errorf("scalar %+v", v)
	}
	if !slices.Equal(s[1].keys, []string{"x", "tokens"}) {
		t.Errorf("keys in file order: %v", s[1].keys)
	}
	if v := s[2].Values["e"]; !slices.Equal(v.Shape, []int{0}) {
		t.Errorf("empty list %+v", v)
	}

	for _, tc := range []struct {
		name, text, want string
	}{
		{"empty file", "", "in.jsonl:1: no samples"},
		{"blank lines only", "\n \n", "in.jsonl:1: no samples"},
		{"not an object", "\n[1, 2]", "in.jsonl:2:1: a sample is a JSON object"},
		{"syntax", `{"tokens": [1, 2,]}`, "in.jsonl:1:18: invalid JSON"},
		{"unterminated", `{"tokens": [1, 2`, "in.jsonl:1:17: invalid JSON: the line ends inside the object"},
		{"string value", `{"tokens": ["a"]}`, `in.jsonl:1:16: tokens[0]: want a number or a list of numbers, got the string "a"`},
		{"bool value", `{"tokens": [true]}`, "got true (write 1 or 0)"},
		{"object value", `{"tokens": {"a": 1}}`, "tokens: want a number or a list of numbers, got an object"},
		{"ragged", `{"x": [[1, 2], [3]]}`, "x: element 1 has shape [1], element 0 has [2]; lists must be rectangular"},
		{"mixed", `{"x": [[1, 2], 3]}`, "x: element 1 has shape [], element 0 has [2]"},
		{"duplicate", `{"x": 1, "x": 2}`, `in.jsonl:1:10: input "x" is given twice`},
		{"two objects", `{"x": 1} {"y": 2}`, "one JSON object per line"},
		{"empty object", `{}`, "empty sample"},
		{"too deep", `{"x": [[[[[[[[[1]]]]]]]]]}`, "nested deeper than 8"},
	} {
		_, err := ParseSamples(strings.NewReader(tc.text), "in.jsonl")
		var se *SampleError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want *SampleError containing %q", tc.name, err, tc.want)
		}
	}
	long := `{"x": [` + strings.Repeat("1,", MaxSampleLine/2) + `1]}`
	if _, err := ParseSamples(strings.NewReader(long), "big.jsonl"); err == nil || !strings.Contains(err.Error(), "big.jsonl:1: line longer than 64 MiB") {
		t.Errorf("long line: %v", err)
	}
}

func FuzzParseSamples(f *testing.F) {
	for _, s := range []string{
		`{"tokens": [1, 2, 3]}`,
		"{\"x\": [[0.5, -1], [2, 3e-1]], \"tokens\": 7}\n{\"tokens\":[4]}",
		`{"x": [[1, 2], [3]]}`,
		`{"x": 1, "x": 2}`,
		`[1]`, `{`, `{"a":[[[[[[[[[[1]]]]]]]]]]}`, "\r\n\r\n", `{"a":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		samples, err := ParseSamples(strings.NewReader(string(data)), "f")
		if err != nil {
			var se *SampleError
			if !errors.As(err, &se) || se.File != "f" || se.Line < 1 {
				t.Fatalf("error without a place: %v", err)
			}
			return
		}
		for _, s := range samples {
			for k, v := range s.Values {
				if numElements(v.Shape) != len(v.Nums) {
					t.Fatalf("line %d %q: shape %v for %d numbers", s.Line, k, v.Shape, len(v.Nums))
				}
			}
		}
	})
}

// decoderSig is a signature like the generated decoders': tokens [seq] →
// logits [seq, vocab], plus a float input.
func decoderSig(seq int) interp.Signature {
	return interp.Signature{Key: "serving_default", Inputs: []interp.IO{
		{Name: "ids", Tensor: 0, Type: fb.TensorTypeINT32, Shape: []int{seq}},
		{Name: "x", Tensor: 1, Type: fb.TensorTypeFLOAT32, Shape: []int{-1, 3}},
	}}
}

func TestPlanInputs(t *testing.T) {
	tokens := map[int]int{0: 1000}
	l, err := PlanInputs(decoderSig(8), tokens, 0)
	if err != nil {
		t.Fatal(err)
	}
	if l.Seq != 8 || l.Inputs[0].Vocab != 1000 || !slices.Equal(l.Inputs[0].Shape, []int{8}) || !slices.Equal(l.Inputs[1].Shape, []int{1, 3}) {
		t.Errorf("layout %+v", l)
	}
	if _, err := PlanInputs(decoderSig(8), tokens, 8); err != nil {
		t.Errorf("seq = the model's: %v", err)
	}
	_, err = PlanInputs(decoderSig(8), tokens, 64)
	if err == nil || !strings.Contains(err.Error(), "the model's sequence length is 8") {
		t.Errorf("fixed length 8, asked 64: %v", err)
	}
	for seq, want := range map[int]int{0: DefaultSeq, 5: 5} {
		l, err := PlanInputs(decoderSig(-1), tokens, seq)
		if err != nil || l.Seq != want || !slices.Equal(l.Inputs[0].Shape, []int{want}) {
			t.Errorf("dynamic, seq %d: %+v %v; want length %d", seq, l, err, want)
		}
	}
	if _, err := PlanInputs(decoderSig(8), nil, 8); err == nil || !strings.Contains(err.Error(), "has no token input") {
		t.Errorf("no token input, seq given: %v", err)
	}
}

func TestGenerate(t *testing.T) {
	l, err := PlanInputs(decoderSig(4096), map[int]int{0: 1000}, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, err := l.Generate(7, 0)
	if err != nil {
		t.Fatal(err)
	}
	ids, x := a["ids"].I32, a["x"].F32
	if len(ids) != 4096 || slices.Min(ids) != 0 || slices.Max(ids) != 999 {
		t.Errorf("ids: %d in [%d, %d], want 4096 in [0, 999]", len(ids), slices.Min(ids), slices.Max(ids))
	}
	// Sample 0 is the seed's own modelinput stream: input i uses index i.
	s := modelinput.NewStream(7, 0)
	for i := range 4 {
		if want := int32(s.Below(1000)); ids[i] != want {
			t.Fatalf("ids[%d] = %d, want %d", i, ids[i], want)
		}
	}
	s = modelinput.NewStream(7, 1)
	if len(x) != 3 || x[0] != s.Float() {
		t.Errorf("x = %v", x)
	}
	b, _ := l.Generate(7, 0)
	c, _ := l.Generate(7, 1)
	if !slices.Equal(b["ids"].I32, ids) || slices.Equal(c["ids"].I32, ids) {
		t.Error("the same sample must repeat, another sample must differ")
	}
}

func TestBind(t *testing.T) {
	parse := func(text string) *Sample {
		t.Helper()
		s, err := ParseSamples(strings.NewReader(text), "in.jsonl")
		if err != nil {
			t.Fatal(err)
		}
		return s[0]
	}
	fixed, _ := PlanInputs(decoderSig(4), map[int]int{0: 10}, 0)
	dyn, _ := PlanInputs(decoderSig(-1), map[int]int{0: 10}, 0)

	got, err := fixed.Bind(parse(`{"tokens": [1, 2, 3, 9]}`), "in.jsonl", 1, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got["ids"].I32, []int32{1, 2, 3, 9}) || got["x"] == nil || len(got["x"].F32) != 3 {
		t.Errorf("bound %+v", got)
	}
	gen, _ := fixed.Generate(1, 0)
	if !slices.Equal(got["x"].F32, gen["x"].F32) {
		t.Error("an input the line leaves out must be generated as Generate does")
	}
	got, err = dyn.Bind(parse(`{"ids": [1, 2], "x": [[1, 2, 3], [4, 5, 6]]}`), "in.jsonl", 1, 0, 0)
	if err != nil || !slices.Equal(got["ids"].Shape, []int{2}) || !slices.Equal(got["x"].Shape, []int{2, 3}) {
		t.Errorf("dynamic: %+v %v", got, err)
	}
	got, err = dyn.Bind(parse(`{"x": [1, 2, 3, 4, 5, 6]}`), "in.jsonl", 1, 0, 0)
	if err != nil || !slices.Equal(got["x"].Shape, []int{2, 3}) {
		t.Errorf("flat list into a dynamic shape: %+v %v", got, err)
	}

	for _, tc := range []struct {
		name, text string
		l          *Layout
		seq        int
		want       string
	}{
		{"unknown input", `{"tokns": [1]}`, fixed, 0, `in.jsonl:1:2: signature "serving_default" has no input "tokns"; its inputs are "ids", "x"`},
		{"alias and name", `{"tokens": [1,2,3,4], "ids": [1,2,3,4]}`, fixed, 0, `input "ids" is given twice`},
		{"out of vocabulary", `{"tokens": [1, 2, 10, 3]}`, fixed, 0, `input "tokens": element 2 (10) is not a token id in [0, 10)`},
		{"negative id", `{"tokens": [-1, 2, 1, 3]}`, fixed, 0, "element 0 (-1) is not a token id"},
		{"fraction id", `{"tokens": [1.5, 2, 1, 3]}`, fixed, 0, "element 0 (1.5) is not a token id"},
		{"wrong length", `{"tokens": [1, 2, 3]}`, fixed, 0, "shape [3], the model's is [4]"},
		{"wrong dims", `{"x": [[1, 2], [3, 4]]}`, fixed, 0, "shape [2 2], the model's is [-1 3] (dimension 1 must be 3)"},
		{"wrong rank", `{"x": [[[1, 2, 3]]]}`, fixed, 0, "has rank 2"},
		{"float overflow", `{"x": [1, 2, 1e39]}`, fixed, 0, "element 2 (1e39) is not a finite float32"},
		{"not filling", `{"x": [1, 2, 3, 4]}`, dyn, 0, "4 values do not fill the model's shape [-1 3]"},
		{"empty", `{"ids": []}`, dyn, 0, `input "ids": no values`},
		{"seq mismatch", `{"tokens": [1, 2]}`, dyn, 3, "2 tokens per sequence, but a length of 3 was asked for"},
	} {
		_, err := tc.l.Bind(parse(tc.text), "in.jsonl", 1, 0, tc.seq)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "in.jsonl:1:") {
			t.Errorf("%s: %v, want in.jsonl:1:…%q", tc.name, err, tc.want)
		}
	}
}
