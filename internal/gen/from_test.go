package gen

import (
	"bytes"
	"strings"
	"testing"

	"github.com/qpipe/qpipe/internal/tflite"
)

// TestDecoderFromGenerated gives DecoderFrom the generated weights and wants
// Decoder's bytes: the same graph, names and weight order.
func TestDecoderFromGenerated(t *testing.T) {
	cfg, _ := Preset("tiny")
	cfg.Layers = 1
	specs, err := Weights(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if want := cfg.Params(); func() int64 {
		var n int64
		for _, s := range specs {
			n += int64(s.Numel())
		}
		return n
	}() != want {
		t.Fatalf("Weights: element count differs from Params %d", want)
	}
	values := map[string][]float32{}
	for _, s := range specs {
		w := weight{key: s.Key, kind: kindMatrix, rows: s.Rows, cols: s.Cols}
		if s.Rows == 0 {
			w.kind = kindNorm
		}
		values[s.Key] = w.values(cfg.Seed)
	}
	write := func(m *tflite.Model) []byte {
		var b bytes.Buffer
		if _, err := tflite.Write(&b, m, tflite.WriteOptions{Layout: tflite.LayoutInline}); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	want, err := Decoder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecoderFrom(cfg, values)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(write(got), write(want)) {
		t.Fatal("DecoderFrom with the generated weights differs from Decoder")
	}

	// Missing, short and unknown weights are refused by name.
	short := map[string][]float32{}
	for k, v := range values {
		short[k] = v
	}
	short["final_norm.weight"] = short["final_norm.weight"][:3]
	if _, err := DecoderFrom(cfg, short); err == nil || !strings.Contains(err.Error(), "final_norm.weight") {
		t.Errorf("short weight: err = %v", err)
	}
	delete(short, "final_norm.weight")
	if _, err := DecoderFrom(cfg, short); err == nil || !strings.Contains(err.Error(), "final_norm.weight") {
		t.Errorf("missing weight: err = %v", err)
	}
	values["extra.weight"] = []float32{1}
	if _, err := DecoderFrom(cfg, values); err == nil || !strings.Contains(err.Error(), "extra.weight") {
		t.Errorf("unknown weight: err = %v", err)
	}
}
