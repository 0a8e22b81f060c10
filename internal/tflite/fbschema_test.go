package tflite

import (
	"testing"

	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// TestSchemaMatchesBindings checks the parsed schema against the generated
// bindings of the same schema.fbs: enums, unions and field slots.
func TestSchemaMatchesBindings(t *testing.T) {
	s, err := tfliteSchema()
	if err != nil {
		t.Fatal(err)
	}
	enumEqual := func(name string, want map[int64]string) {
		t.Helper()
		e := s.enums[name]
		if e == nil || len(e.values) != len(want) {
			t.Fatalf("enum %s: parsed %v, bindings have %d values", name, e, len(want))
		}
		for v, n := range want {
			if e.values[v] != n {
				t.Errorf("enum %s value %d: parsed %q, bindings %q", name, v, e.values[v], n)
			}
		}
	}
	conv := func(m any) map[int64]string {
		out := map[int64]string{}
		switch m := m.(type) {
		case map[fb.TensorType]string:
			for k, v := range m {
				out[int64(k)] = v
			}
		case map[fb.BuiltinOperator]string:
			for k, v := range m {
				out[int64(k)] = v
			}
		case map[fb.ActivationFunctionType]string:
			for k, v := range m {
				out[int64(k)] = v
			}
		case map[fb.Padding]string:
			for k, v := range m {
				out[int64(k)] = v
			}
		case map[fb.StablehloPrecisionConfig]string:
			for k, v := range m {
				out[int64(k)] = v
			}
		}
		return out
	}
	enumEqual("TensorType", conv(fb.EnumNamesTensorType))
	enumEqual("BuiltinOperator", conv(fb.EnumNamesBuiltinOperator))
	enumEqual("ActivationFunctionType", conv(fb.EnumNamesActivationFunctionType))
	enumEqual("Padding", conv(fb.EnumNamesPadding))
	enumEqual("StablehloPrecisionConfig", conv(fb.EnumNamesStablehloPrecisionConfig))

	for name, n := range map[string]int{
		"BuiltinOptions":      len(fb.EnumNamesBuiltinOptions) - 1,
		"BuiltinOptions2":     len(fb.EnumNamesBuiltinOptions2) - 1,
		"QuantizationDetails": len(fb.EnumNamesQuantizationDetails) - 1,
	} {
		if got := len(s.unions[name].members); got != n {
			t.Errorf("union %s: parsed %d members, bindings %d", name, got, n)
		}
	}
	if m := s.unions["BuiltinOptions"].members; m[fb.BuiltinOptionsFullyConnectedOptions-1].name != "FullyConnectedOptions" {
		t.Errorf("BuiltinOptions member %d is %s", fb.BuiltinOptionsFullyConnectedOptions, m[fb.BuiltinOptionsFullyConnectedOptions-1].name)
	}
	// Field slots: Operator has 14 (two unions of two slots each), Tensor 11.
	for name, want := range map[string]int{"Operator": 14, "Tensor": 11, "Model": 10, "QuantizationParameters": 7, "SignatureDef": 5} {
		if got := len(s.tables[name].fields); got != want {
			t.Errorf("table %s: %d field slots, want %d", name, got, want)
		}
	}
	op := s.tables["Operator"]
	if f := op.fields[3]; f.kind != kindUnionType || f.name != "builtin_options_type" {
		t.Errorf("Operator slot 3 = %+v", f)
	}
	if f := op.fields[12]; f.kind != kindUnion || f.union.name != "BuiltinOptions2" {
		t.Errorf("Operator slot 12 = %+v", f)
	}
	if s.root.name != "Model" {
		t.Errorf("root %s", s.root.name)
	}
}

func TestSchemaParseErrors(t *testing.T) {
	for _, src := range []string{
		"table T { a: Missing; } root_type T;",
		"table T { a: int (id: 3); } root_type T;",
		"struct S { a: int; }",
		"table T { a: int; } root_type U;",
		"enum E : float { A }",
		"table T { a: int",
	} {
		if _, err := parseSchema(src); err == nil {
			t.Errorf("%q parsed", src)
		}
	}
}
