package conformance

import (
	"context"
	"flag"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qpipe/qpipe/config"
	"github.com/qpipe/qpipe/internal/interp"
	"github.com/qpipe/qpipe/internal/litert"
	"github.com/qpipe/qpipe/internal/modelinput"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

var (
	layersFlag = flag.String("layers", "", "MODEL/PRESET: TestStaticLayers compares the interpreter with LiteRT.js tensor by tensor on that static model")
	layersKeep = flag.String("layers.keep", "", "DIR: TestStaticLayers keeps the static model and its exposed copy there")
)

// exposeActivations returns a copy of the static model m where every
// integer activation an operator of a signature's subgraph computes is
// also a signature output, through a DEQUANTIZE appended to the subgraph
// (LiteRT.js returns float tensors only). The added outputs are named
// "layer:N:TENSOR" (N the operator's index) and their steps (the integer
// tensors' scales) are returned by name.
func exposeActivations(m *tflite.Model) (*tflite.Model, map[string]float64, error) {
	c, err := m.Clone()
	if err != nil {
		return nil, nil, err
	}
	deq := c.OperatorCodeIndex(fb.BuiltinOperatorDEQUANTIZE, 1)
	steps := map[string]float64{}
	for _, sd := range c.Meta.SignatureDefs {
		sg := c.Meta.Subgraphs[sd.SubgraphIndex]
		isOut := map[int32]bool{}
		for _, o := range sg.Outputs {
			isOut[o] = true
		}
		n := len(sg.Operators)
		for k, op := range sg.Operators[:n] {
			for _, o := range op.Outputs {
				tm := sg.Tensors[o]
				if isOut[o] || (tm.Type != fb.TensorTypeINT8 && tm.Type != fb.TensorTypeINT16) || tm.Quantization == nil || len(tm.Quantization.Scale) != 1 {
					continue
				}
				isOut[o] = true
				f := int32(len(sg.Tensors))
				sg.Tensors = append(sg.Tensors, &fb.TensorT{Name: tm.Name + "_layer", Type: fb.TensorTypeFLOAT32, Shape: tm.Shape, ShapeSignature: tm.ShapeSignature, Buffer: c.AddBuffer(nil)})
				sg.Operators = append(sg.Operators, &fb.OperatorT{OpcodeIndex: deq, Inputs: []int32{o}, Outputs: []int32{f}})
				sg.Outputs = append(sg.Outputs, f)
				name := fmt.Sprintf("layer:%d:%s", k, tm.Name)
				sd.Outputs = append(sd.Outputs, &fb.TensorMapT{Name: name, TensorIndex: uint32(f)})
				steps[name] = float64(tm.Quantization.Scale[0])
			}
		}
	}
	return c, steps, nil
}

// TestStaticLayers (run with -layers=MODEL/PRESET, e.g.
// -layers=tiny_decoder/static_int16x8) quantizes the test model with the
// static preset, exposes every integer activation (exposeActivations) and
// logs, operator by operator, how many of its integers the interpreter
// computes as LiteRT.js does, on the suite's inputs: the first operators
// that differ are where the interpreter's arithmetic departs from the
// runtime's.
func TestStaticLayers(t *testing.T) {
	if *layersFlag == "" {
		t.Skip("a diagnostic: run with -layers=MODEL/PRESET")
	}
	name, preset, ok := strings.Cut(*layersFlag, "/")
	if !ok {
		t.Fatalf("-layers=%q: want MODEL/PRESET", *layersFlag)
	}
	r := litert.Require(t)
	ctx := context.Background()
	rec, err := config.Preset(preset)
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(modelsDir, name+".tflite")
	dir := *layersKeep
	if dir == "" {
		dir = t.TempDir()
	}
	static := filepath.Join(dir, name+"_"+rec.Suffix+".tflite")
	if _, err := QuantizeRecipe(ctx, src, static, rec, false); err != nil {
		t.Fatal(err)
	}
	m, err := tflite.Open(static)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	vocab := modelinput.VocabSize(m.Meta)
	exposed, steps, err := exposeActivations(m)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+"_"+rec.Suffix+"_exposed.tflite")
	if err := tflite.WriteFile(ctx, path, exposed, tflite.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	opt := interp.Options{}
	if preset == "static_int8" {
		opt.IntArithmetic = interp.IntXNNPACK
	}
	in, err := interp.New(exposed, opt)
	if err != nil {
		t.Fatal(err)
	}
	info, err := r.Info(path)
	if err != nil {
		t.Fatal(err)
	}
	opName := func(sig, out string) string {
		for _, sd := range exposed.Meta.SignatureDefs {
			if sd.SignatureKey != sig {
				continue
			}
			var k int
			if _, err := fmt.Sscanf(out, "layer:%d:", &k); err != nil {
				return "output"
			}
			op := exposed.Meta.Subgraphs[sd.SubgraphIndex].Operators[k]
			var ins []string
			for _, i := range op.Inputs {
				if i >= 0 {
					tm := exposed.Meta.Subgraphs[sd.SubgraphIndex].Tensors[i]
					ins = append(ins, tflite.TypeName(tm.Type))
				}
			}
			return fmt.Sprintf("%s(%s)", fb.EnumNamesBuiltinOperator[exposed.OpCode(op)], strings.Join(ins, ","))
		}
		return "?"
	}
	for _, sig := range info.Signatures {
		var isig *interp.Signature
		for i, s := range in.Signatures() {
			if s.Key == sig.Key {
				isig = &in.Signatures()[i]
			}
		}
		if isig == nil {
			t.Fatalf("signature %q missing on the interpreter", sig.Key)
		}
		type agg struct {
			n, eq, near int
			worst       float64
		}
		stats := make([]agg, len(sig.Outputs))
		for _, seed := range seeds {
			inputs := litert.RandomTensors(sig.Inputs, seed, vocab)
			want, err := r.RunSignature(path, sig.Key, inputs)
			if err != nil {
				t.Fatal(err)
			}
			args := map[string]*interp.Tensor{}
			for k, v := range inputs {
				switch v.DType {
				case "float32":
					args[isig.Inputs[k].Name] = interp.F32Tensor(v.Shape, v.Float32s())
				case "int32":
					args[isig.Inputs[k].Name] = interp.I32Tensor(v.Shape, v.Int32s())
				}
			}
			got, err := in.Run(ctx, sig.Key, args)
			if err != nil {
				t.Fatal(err)
			}
			for k, o := range sig.Outputs {
				step := steps[o.Name]
				if step == 0 {
					continue
				}
				a, b := got[isig.Outputs[k].Name].F32, want[k].Float32s()
				for j := range b {
					d := math.Abs(float64(a[j])-float64(b[j])) / step
					st := &stats[k]
					st.n++
					if d < 0.5 {
						st.eq++
					}
					if d < 1.5 {
						st.near++
					}
					st.worst = max(st.worst, d)
				}
			}
		}
		shown := 0
		for k, o := range sig.Outputs {
			st := stats[k]
			if st.n == 0 {
				continue
			}
			if st.eq < st.n || testing.Verbose() && shown < 0 {
				short := o.Name
				if len(short) > 60 {
					short = "…" + short[len(short)-59:]
				}
				t.Logf("%s %-60s %-28s %7d values: %.4f equal, %.4f within one step, worst %.0f", sig.Key, short, opName(sig.Key, o.Name), st.n,
					float64(st.eq)/float64(st.n), float64(st.near)/float64(st.n), st.worst)
				shown++
			}
		}
	}
}
