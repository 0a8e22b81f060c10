package config

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseSchemeValid(t *testing.T) {
	for _, c := range []struct {
		text string
		want Scheme
	}{
		{"dynamic_int8", Scheme{"dynamic_int8", "int8", "dynamic_range", "min_max", "channelwise", 0, true, ""}},
		{"weight_only_int8", Scheme{"weight_only_int8", "int8", "weight_only", "min_max", "channelwise", 0, true, ""}},
		{"weight_only_int8_asym", Scheme{"weight_only_int8_asym", "int8", "weight_only", "min_max", "channelwise", 0, false, ""}},
		{"fp16", Scheme{"fp16", "fp16", "weight_only", "float_cast", "none", 0, false, ""}},
		{"dynamic_int4_block32", Scheme{"dynamic_int4_block32", "int4", "dynamic_range", "min_max", "blockwise", 32, true, ""}},
		{"dynamic_int4_block256", Scheme{"dynamic_int4_block256", "int4", "dynamic_range", "min_max", "blockwise", 256, true, ""}},
		{"dynamic_int4_block96", Scheme{"dynamic_int4_block96", "int4", "dynamic_range", "min_max", "blockwise", 96, true, ""}},
		{"{weight: int8, mode: dynamic_range}", Scheme{"dynamic_int8", "int8", "dynamic_range", "min_max", "channelwise", 0, true, ""}},
		{"{activation: FP32, weight: INT8, mode: WEIGHT_ONLY, algorithm: MIN_MAX, granularity: CHANNELWISE}",
			Scheme{"weight_only_int8", "int8", "weight_only", "min_max", "channelwise", 0, true, ""}},
		{"{weight: int8, mode: weight_only, symmetric: false}", Scheme{"weight_only_int8_asym", "int8", "weight_only", "min_max", "channelwise", 0, false, ""}},
		{"{weight: float16, mode: weight_only}", Scheme{"fp16", "fp16", "weight_only", "float_cast", "none", 0, false, ""}},
		{"{weight: int4, mode: dynamic_range, block_size: 64}", Scheme{"dynamic_int4_block64", "int4", "dynamic_range", "min_max", "blockwise", 64, true, ""}},
		{"{weight: int4, mode: dynamic_range, granularity: BLOCKWISE_128}", Scheme{"dynamic_int4_block128", "int4", "dynamic_range", "min_max", "blockwise", 128, true, ""}},
		{"{activation: float32, weight: int4, mode: dynamic_range, algorithm: min_max, granularity: blockwise_32, block_size: 32, symmetric: true}",
			Scheme{"dynamic_int4_block32", "int4", "dynamic_range", "min_max", "blockwise", 32, true, ""}},
		{"weight: int4\nmode: dynamic_range\nblock_size: 0x40\n", Scheme{"dynamic_int4_block64", "int4", "dynamic_range", "min_max", "blockwise", 64, true, ""}},
		{"{weight: int4, mode: dynamic_range, block_size: 32, scales: search}", Scheme{"dynamic_int4_block32", "int4", "dynamic_range", "min_max", "blockwise", 32, true, "search"}},
		{"{scheme: dynamic_int4_block128, scales: calibrated}", Scheme{"dynamic_int4_block128", "int4", "dynamic_range", "min_max", "blockwise", 128, true, "calibrated"}},
		{"{scheme: dynamic_int8, scales: minmax}", Scheme{"dynamic_int8", "int8", "dynamic_range", "min_max", "channelwise", 0, true, "minmax"}},
		{"{scheme: dynamic_int8}", Scheme{"dynamic_int8", "int8", "dynamic_range", "min_max", "channelwise", 0, true, ""}},
	} {
		s, err := ParseScheme(c.text)
		if err != nil {
			t.Errorf("%s: %v", c.text, err)
			continue
		}
		if *s != c.want {
			t.Errorf("%s: got %+v, want %+v", c.text, *s, c.want)
		}
	}
	none, err := ParseScheme("none")
	if err != nil || !none.IsNone() || none.Bits() != 32 {
		t.Errorf("none: %+v %v", none, err)
	}
}

func TestParseSchemeErrors(t *testing.T) {
	for _, c := range []struct {
		text string
		pos  string
		subs []string
	}{
		{"int4", "1:1", []string{`unknown scheme "int4"`, "valid: none, dynamic_int8, weight_only_int8, weight_only_int8_asym, fp16, dynamic_int4_block32, dynamic_int4_block64, dynamic_int4_block128, dynamic_int4_block256"}},
		{"Dynamic_Int8", "1:1", []string{`did you mean "dynamic_int8"?`}},
		{"{scheme: dynamic_int8, scales: search}", "1:32", []string{"search applies to int4 blockwise schemes only"}},
		{"{weight: fp16, mode: weight_only, scales: calibrated}", "1:43", []string{"calibrated applies to int4 blockwise schemes only"}},
		{"{scheme: dynamic_int4_block32, scales: best}", "1:40", []string{`unknown value "best"`, "minmax, search, calibrated"}},
		{"{scheme: dynamic_int4_block32, block_size: 64}", "1:32", []string{"block_size"}},
		{"dynamic_int4_block48", "1:1", []string{"block size 48: must be a multiple of 32, at least 32"}},
		{"dynamic_int4_block16", "1:1", []string{"block size 16: must be a multiple of 32, at least 32"}},
		{"dynamic_int4_block0", "1:1", []string{"block size 0: must be a multiple of 32"}},
		{"dynamic_int4_block064", "1:1", []string{`unknown scheme "dynamic_int4_block064"`}},
		{"dynamic_int4_block99999999999", "1:1", []string{"too large"}},
		{"dynamic_int4_block2097152", "1:1", []string{"block size 2097152: too large"}},
		{"[dynamic_int8]", "1:1", []string{"expected a string, got a list"}},
		{"8", "1:1", []string{"expected a string, got the integer 8"}},
		{"", "1:1", []string{"empty scheme"}},
		{"{weight: int8", "1", []string{"YAML syntax error"}},
		{"{weight: int4, mode: dynamic_range, granularity: channelwise}", "1:1", []string{"unsupported combination {weight: int4, mode: dynamic_range, algorithm: min_max, granularity: channelwise, symmetric: true}", "valid: dynamic_int8 {"}},
		{"{weight: int4, mode: weight_only, block_size: 32}", "1:1", []string{"unsupported combination {weight: int4, mode: weight_only"}},
		{"weight_only_int4_asym_per_tensorx", "1:1", []string{"unknown scheme"}},
		{"{weight: int4, mode: dynamic_range, block_size: 32, symmetric: false}", "1:1", []string{"unsupported combination", "symmetric: false"}},
		{"{weight: int8, mode: dynamic_range, granularity: blockwise, block_size: 32}", "1:1", []string{"unsupported combination {weight: int8, mode: dynamic_range, algorithm: min_max, granularity: blockwise, block_size: 32"}},
		{"{weight: int8, mode: dynamic_range, symmetric: false}", "1:1", []string{"unsupported combination"}},
		{"{weight: int8, mode: dynamic_range, granularity: none}", "1:1", []string{"unsupported combination"}},
		{"{weight: fp16, mode: weight_only, algorithm: min_max}", "1:1", []string{"unsupported combination {weight: fp16, mode: weight_only, algorithm: min_max, granularity: none}"}},
		{"{weight: fp16, mode: dynamic_range}", "1:1", []string{"unsupported combination"}},
		{"{weight: int8, mode: dynamic_range, block_size: 32}", "1:49", []string{"block_size: block_size applies only to granularity blockwise"}},
		{"{weight: int4, mode: dynamic_range}", "1:1", []string{"granularity blockwise needs block_size"}},
		{"{weight: int4, mode: dynamic_range, granularity: blockwise_32, block_size: 64}", "1:76", []string{"block_size 64 contradicts granularity blockwise_32"}},
		{"{weight: int4, mode: dynamic_range, block_size: 48}", "1:49", []string{"block_size: block size 48: must be a multiple of 32, at least 32"}},
		{"{weight: int4, mode: dynamic_range, block_size: -32}", "1:49", []string{"block size -32"}},
		{"{weight: int4, mode: dynamic_range, block_size: 32.0}", "1:49", []string{"expected an integer, got the number 32.0"}},
		{"{weight: int4, mode: dynamic_range, block_size: 99999999999999999999}", "1:49", []string{"expected an integer, got the number 99999999999999999999"}},
		{"{weight: fp16, mode: weight_only, symmetric: true}", "1:46", []string{"symmetric does not apply to fp16"}},
		{"{activation: int8, weight: int8, mode: dynamic_range}", "1:14", []string{`unsupported activation "int8"`}},
		{"{weight: int2, mode: dynamic_range}", "1:10", []string{`weight: unknown value "int2"`, `did you mean "int8"?`, "valid: int8, int4, fp16, float16"}},
		{"{weight: int8, mode: static}", "1:22", []string{`mode: unknown value "static"`}},
		{"{weight: int8, mode: dynamic_range, granularity: pertensor}", "1:50", []string{`unknown value "pertensor"`, "blockwise_<B>"}},
		{"{weight: int8, mode: dynamic_range, granularity: tensorwise, symmetric: false}", "1:1", []string{"unsupported combination"}},
		{"{weight: int4, mode: dynamic_range, granularity: tensorwise}", "1:1", []string{"unsupported combination"}},
		{"{weight: int8}", "1:1", []string{"missing key mode"}},
		{"{mode: weight_only}", "1:1", []string{"missing key weight"}},
		{"{weight: int8, mode: weight_only, bits: 8}", "1:35", []string{`unknown key "bits"`}},
	} {
		_, err := ParseScheme(c.text)
		if err == nil {
			t.Errorf("%s: accepted", c.text)
			continue
		}
		ds := err.(Diagnostics)
		if len(ds) != 1 || ds[0].Pos.String() != c.pos {
			t.Errorf("%s: got %v, want one problem at %s", c.text, err, c.pos)
			continue
		}
		for _, sub := range c.subs {
			if !strings.Contains(err.Error(), sub) {
				t.Errorf("%s: %q lacks %q", c.text, err, sub)
			}
		}
	}
}

// TestSchemeCombinations walks the whole field space: exactly the
// documented combinations are accepted, and each accepted one round-trips
// through its name.
func TestSchemeCombinations(t *testing.T) {
	var accepted []string
	for _, w := range []string{WeightInt8, WeightInt4, WeightFP16} {
		for _, m := range []string{ModeDynamicRange, ModeWeightOnly} {
			for _, a := range []string{AlgorithmMinMax, AlgorithmFloatCast} {
				for _, g := range []string{GranularityChannelwise, GranularityTensorwise, GranularityBlockwise, GranularityNone} {
					for _, b := range []int{0, 32, 64} {
						for _, sym := range []bool{true, false} {
							text := fmt.Sprintf("{weight: %s, mode: %s, algorithm: %s, granularity: %s", w, m, a, g)
							if b != 0 {
								text += fmt.Sprintf(", block_size: %d", b)
							}
							if w != WeightFP16 {
								text += fmt.Sprintf(", symmetric: %t", sym)
							} else if !sym {
								continue // symmetric is not written for fp16
							}
							s, err := ParseScheme(text + "}")
							if err != nil {
								continue
							}
							accepted = append(accepted, s.Name)
							back, err := ParseScheme(s.Name)
							if err != nil || *back != *s {
								t.Errorf("%s: name %s parses to %+v, %v", text, s.Name, back, err)
							}
							if s.fields() != text+"}" {
								t.Errorf("fields() = %s, want %s}", s.fields(), text)
							}
						}
					}
				}
			}
		}
	}
	want := "dynamic_int8 weight_only_int8 weight_only_int8_asym dynamic_int8_per_tensor weight_only_int8_per_tensor weight_only_int8_asym_per_tensor " +
		"weight_only_int4 weight_only_int4_asym weight_only_int4_per_tensor weight_only_int4_asym_per_tensor fp16 dynamic_int4_block32 dynamic_int4_block64"
	got := strings.Join(accepted, " ")
	for _, name := range strings.Fields(want) {
		if strings.Count(got, name+" ")+strings.Count(got+" ", name+" ") == 0 {
			t.Errorf("%s not accepted", name)
		}
	}
	if len(accepted) != 13 {
		t.Errorf("accepted %d combinations: %s; want the 13 of %s", len(accepted), got, want)
	}
}

func TestSchemeBits(t *testing.T) {
	for name, bits := range map[string]int{"dynamic_int8": 8, "weight_only_int8_asym": 8, "fp16": 16, "dynamic_int4_block64": 4, "none": 32} {
		s, err := ParseScheme(name)
		if err != nil || s.Bits() != bits {
			t.Errorf("%s: bits %d, %v; want %d", name, s.Bits(), err, bits)
		}
	}
}
