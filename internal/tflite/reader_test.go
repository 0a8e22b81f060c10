package tflite

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// unpackAll decodes a file with the generated object API as a whole: the
// reference the reader's own unpacking must agree with.
func unpackAll(t *testing.T, data []byte) *fb.ModelT {
	t.Helper()
	var m *fb.ModelT
	if err := fb.Decode(decodeBudget(int64(len(data))), func() error {
		m = fb.GetRootAsModel(data, 0).UnPack()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestReadAgreesWithObjectAPI reads every test model in the three ways the
// package offers and checks the tables against a whole-model UnPack and
// every buffer's bytes against the file.
func TestReadAgreesWithObjectAPI(t *testing.T) {
	for _, path := range testModels(t) {
		t.Run(modelName(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			want := unpackAll(t, data)
			wantData := make([][]byte, len(want.Buffers))
			for i, b := range want.Buffers {
				wantData[i] = b.Data
				if b.Data == nil && b.Offset > 1 {
					wantData[i] = data[b.Offset : b.Offset+b.Size]
				}
				b.Data = nil
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			readers := map[string]func() (*Model, error){
				"Open":        func() (*Model, error) { return Open(path) },
				"Read/File":   func() (*Model, error) { return Read(f, int64(len(data)), path) },
				"Read/Reader": func() (*Model, error) { return Read(bytes.NewReader(data), int64(len(data)), path) },
			}
			for name, read := range readers {
				m, err := read()
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if !deepEqual(m.Meta, want) {
					t.Errorf("%s: tables differ from fb.Model.UnPack", name)
				}
				if len(m.Buffers) != len(want.Buffers) {
					t.Fatalf("%s: %d buffers, want %d", name, len(m.Buffers), len(want.Buffers))
				}
				for i, b := range m.Buffers {
					if (b.Data == nil) != (wantData[i] == nil) {
						t.Fatalf("%s: buffer %d: data present %v, want %v", name, i, b.Data != nil, wantData[i] != nil)
					}
					if b.Data == nil {
						continue
					}
					got, err := ReadAll(b.Data)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, wantData[i]) {
						t.Errorf("%s: buffer %d: bytes differ", name, i)
					}
					var w bytes.Buffer
					if n, err := b.Data.WriteTo(&w); err != nil || n != b.Data.Len() || !bytes.Equal(w.Bytes(), wantData[i]) {
						t.Errorf("%s: buffer %d: WriteTo wrote %d bytes (%v), want the %d bytes of the file", name, i, n, err, len(wantData[i]))
					}
				}
				if err := m.Close(); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

func TestLayoutDetected(t *testing.T) {
	for name, want := range map[string]Layout{
		"litert_simple_group_norm_op_bufoffset": LayoutOffset,
		"aeq_single_fc":                         LayoutInline,
		"tflm_person_detect":                    LayoutInline,
	} {
		m, err := Open(filepath.Join(modelsDir, name+".tflite"))
		if err != nil {
			t.Fatal(err)
		}
		if m.Layout != want {
			t.Errorf("%s: layout %v, want %v", name, m.Layout, want)
		}
		m.Close()
	}
}

func TestSectionAfterClose(t *testing.T) {
	m, err := Open(filepath.Join(modelsDir, "aeq_single_fc.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	s := m.Buffers[3].Data.(*Section)
	if s.Bytes() == nil || s.Len() != 16*8*4 {
		t.Fatalf("weight section: %d bytes, mapped %v", s.Len(), s.Bytes() != nil)
	}
	m.Close()
	if s.Bytes() != nil {
		t.Error("Bytes after Close is not nil")
	}
	if _, err := s.WriteTo(&bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("WriteTo after Close: %v, want an error saying the model was closed", err)
	}
}

// mutation edits a copy of a model file to break one thing.
type mutation func(t *testing.T, b []byte) []byte

func loadModel(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(modelsDir, name+".tflite"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func root(b []byte) *fb.Model { return fb.GetRootAsModel(b, 0) }

func subgraph(b []byte, i int) *fb.SubGraph {
	var sg fb.SubGraph
	root(b).Subgraphs(&sg, i)
	return &sg
}

func tensor(b []byte, sg, i int) *fb.Tensor {
	var x fb.Tensor
	subgraph(b, sg).Tensors(&x, i)
	return &x
}

func operator(b []byte, sg, i int) *fb.Operator {
	var x fb.Operator
	subgraph(b, sg).Operators(&x, i)
	return &x
}

// vectorLenPos is the position of the length word of the vector in field
// vo of tab.
func vectorLenPos(tab flatbuffers.Table, vo flatbuffers.VOffsetT) int {
	o := tab.Offset(vo)
	return int(tab.Vector(flatbuffers.UOffsetT(o))) - 4
}

func must(t *testing.T, ok bool) {
	t.Helper()
	if !ok {
		t.Fatal("mutation did not apply")
	}
}

// corruptCase is a real model made bad by edit; reading it must fail with
// a *FormatError naming the file and containing every string of want.
type corruptCase struct {
	name  string
	model string
	edit  mutation
	want  []string // substrings of the error
}

func TestCorruptInput(t *testing.T) {
	cases := []corruptCase{
		{"empty", "aeq_single_fc", func(t *testing.T, b []byte) []byte { return nil }, []string{"too short"}},
		{"seven bytes", "aeq_single_fc", func(t *testing.T, b []byte) []byte { return b[:7] }, []string{"too short"}},
		{"wrong identifier", "aeq_single_fc", func(t *testing.T, b []byte) []byte { copy(b[4:], "TFL2"); return b }, []string{`"TFL2"`, "not a .tflite"}},
		{"version 2", "aeq_single_fc", func(t *testing.T, b []byte) []byte { must(t, root(b).MutateVersion(2)); return b }, []string{"schema version 2, want 3"}},
		{"root outside file", "aeq_single_fc", func(t *testing.T, b []byte) []byte {
			binary.LittleEndian.PutUint32(b, 0xfffff000)
			return b
		}, []string{"model table", "outside the flatbuffer"}},
		{"tensor buffer out of range", "aeq_single_fc", func(t *testing.T, b []byte) []byte {
			must(t, tensor(b, 0, 2).MutateBuffer(99))
			return b
		}, []string{`subgraph 0 tensor 2 ("sequential/dense/MatMul")`, "buffer 99 out of range (model has 7 buffers)", "at byte 0x"}},
		{"operator input out of range", "aeq_single_fc", func(t *testing.T, b []byte) []byte {
			must(t, operator(b, 0, 0).MutateInputs(1, 44))
			return b
		}, []string{"subgraph 0 operator 0 (FULLY_CONNECTED)", "input 1 is tensor 44, out of range (subgraph has 4 tensors)"}},
		{"operator input -2", "aeq_single_fc", func(t *testing.T, b []byte) []byte {
			must(t, operator(b, 0, 0).MutateInputs(2, -2))
			return b
		}, []string{"input 2 is tensor -2"}},
		{"operator output -1", "aeq_single_fc", func(t *testing.T, b []byte) []byte {
			must(t, operator(b, 0, 0).MutateOutputs(0, -1))
			return b
		}, []string{"output 0 is tensor -1"}},
		{"opcode index out of range", "aeq_conv_fc_mnist", func(t *testing.T, b []byte) []byte {
			must(t, operator(b, 0, 3).MutateOpcodeIndex(5)) // op 3 uses opcode 3, so the field is present
			return b
		}, []string{"subgraph 0 operator 3", "opcode_index 5 out of range (model has 5 operator codes)"}},
		{"subgraph output out of range", "aeq_single_fc", func(t *testing.T, b []byte) []byte {
			must(t, subgraph(b, 0).MutateOutputs(0, 4))
			return b
		}, []string{"subgraph 0: output 0 is tensor 4, out of range"}},
		{"signature subgraph out of range", "aeq_two_signatures", func(t *testing.T, b []byte) []byte {
			var s fb.SignatureDef
			root(b).SignatureDefs(&s, 1)
			must(t, s.MutateSubgraphIndex(3))
			return b
		}, []string{`signature 1 ("multiply")`, "subgraph 3 out of range (model has 2 subgraphs)"}},
		{"signature tensor out of range", "aeq_single_fc", func(t *testing.T, b []byte) []byte {
			var s fb.SignatureDef
			var tm fb.TensorMap
			root(b).SignatureDefs(&s, 0)
			s.Outputs(&tm, 0)
			must(t, tm.MutateTensorIndex(17))
			return b
		}, []string{`signature 0 ("serving_default")`, `output "dense" is tensor 17, out of range`}},
		{"metadata buffer out of range", "aeq_single_fc", func(t *testing.T, b []byte) []byte {
			var md fb.Metadata
			root(b).Metadata(&md, 1)
			must(t, md.MutateBuffer(1000))
			return b
		}, []string{`metadata 1 ("CONVERSION_METADATA")`, "buffer 1000 out of range"}},
		{"legacy metadata_buffer out of range", "litert_tfl_with_metadata", func(t *testing.T, b []byte) []byte {
			must(t, root(b).MutateMetadataBuffer(2, 70))
			return b
		}, []string{"metadata_buffer 2", "buffer 70 out of range"}},
		{"negative dimension", "aeq_single_fc", func(t *testing.T, b []byte) []byte {
			must(t, tensor(b, 0, 2).MutateShape(1, -8))
			return b
		}, []string{`tensor 2 ("sequential/dense/MatMul")`, "dimension 1 is negative"}},
		{"shape_signature below -1", "aeq_single_fc", func(t *testing.T, b []byte) []byte {
			must(t, tensor(b, 0, 0).MutateShapeSignature(0, -3))
			return b
		}, []string{`tensor 0 ("serving_default_input_1:0")`, "shape_signature"}},
		{"element count overflow", "aeq_single_fc", func(t *testing.T, b []byte) []byte {
			x := tensor(b, 0, 2)
			must(t, x.MutateShape(0, 1<<31-1) && x.MutateShape(1, 1<<31-1))
			return b
		}, []string{`tensor 2 ("sequential/dense/MatMul")`, "element count overflows"}},
		{"buffer too small for shape", "aeq_single_fc", func(t *testing.T, b []byte) []byte {
			must(t, tensor(b, 0, 2).MutateShape(1, 9))
			return b
		}, []string{`tensor 2 ("sequential/dense/MatMul")`, "buffer 3 holds 512 bytes, less than the 576 a FLOAT32 tensor of shape [16 9] needs"}},
		{"int4 buffer too small", "litert_qwen_fc_blockwise_quantized", func(t *testing.T, b []byte) []byte {
			must(t, tensor(b, 0, 1).MutateShape(0, 1025))
			return b
		}, []string{"tensor 1", "less than the 524800 a INT4 tensor"}},
		{"blockwise scales out of range", "litert_qwen_fc_blockwise_quantized", func(t *testing.T, b []byte) []byte {
			var q fb.QuantizationParameters
			var tab flatbuffers.Table
			tensor(b, 0, 1).Quantization(&q)
			must(t, q.Details(&tab))
			var bw fb.BlockwiseQuantization
			bw.Init(tab.Bytes, tab.Pos)
			must(t, bw.MutateScales(9))
			return b
		}, []string{"tensor 1", "BlockwiseQuantization scales tensor 9 out of range (subgraph has 4 tensors)"}},
		{"offset beyond file end", "litert_simple_group_norm_op_bufoffset", func(t *testing.T, b []byte) []byte {
			var buf fb.Buffer
			root(b).Buffers(&buf, 11)
			must(t, buf.MutateOffset(1<<40))
			return b
		}, []string{"buffer 11", "runs past the end of the file (3472 bytes)"}},
		{"offset-mode file truncated", "litert_simple_group_norm_op_bufoffset", func(t *testing.T, b []byte) []byte {
			return b[:3400]
		}, []string{"buffer 11", "runs past the end of the file (3400 bytes)"}},
		{"inline data longer than file", "aeq_single_fc", func(t *testing.T, b []byte) []byte {
			var buf fb.Buffer
			root(b).Buffers(&buf, 3)
			binary.LittleEndian.PutUint32(b[vectorLenPos(buf.Table(), 4):], 1<<30)
			return b
		}, []string{"buffer 3", "data vector (1073741824 elements) of 1073741824 bytes runs past the end"}},
		{"huge tensor count", "aeq_single_fc", func(t *testing.T, b []byte) []byte {
			binary.LittleEndian.PutUint32(b[vectorLenPos(subgraph(b, 0).Table(), 4):], 1<<31-1)
			return b
		}, []string{"subgraph 0 tensors", "vector of 2147483647 elements of 4 bytes runs past the end of the flatbuffer"}},
		{"huge shape count", "aeq_single_fc", func(t *testing.T, b []byte) []byte {
			binary.LittleEndian.PutUint32(b[vectorLenPos(tensor(b, 0, 1).Table(), 4):], 5000)
			return b
		}, []string{"subgraph 0 tensor 1 shape", "vector of 5000 elements of 4 bytes runs past the end"}},
		{"huge subgraph count", "aeq_single_fc", func(t *testing.T, b []byte) []byte {
			binary.LittleEndian.PutUint32(b[vectorLenPos(root(b).Table(), 8):], 1<<30)
			return b
		}, []string{"subgraphs: vector of 1073741824 elements"}},
		{"huge buffer count", "aeq_single_fc", func(t *testing.T, b []byte) []byte {
			binary.LittleEndian.PutUint32(b[vectorLenPos(root(b).Table(), 12):], 1<<30)
			return b
		}, []string{"buffers vector (1073741824 elements)", "runs past the end"}},
	}
	runCorrupt(t, cases)
}

// runCorrupt checks that every case is rejected, by Read and by Open alike.
func runCorrupt(t *testing.T, cases []corruptCase) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := c.edit(t, loadModel(t, c.model))
			m, err := Read(bytes.NewReader(b), int64(len(b)), c.model+".tflite")
			if err == nil {
				m.Close()
				t.Fatal("read succeeded")
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Errorf("error is %T, want *FormatError: %v", err, err)
			}
			msg := err.Error()
			t.Log(msg)
			if !strings.HasPrefix(msg, "tflite: "+c.model+".tflite: ") {
				t.Errorf("error %q does not name the file", msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			// Open (memory-mapped) must say the same.
			path := filepath.Join(t.TempDir(), c.model+".tflite")
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			m, err = Open(path)
			if err == nil {
				m.Close()
				t.Fatal("Open succeeded where Read failed")
			}
			if got := strings.Replace(err.Error(), path, c.model+".tflite", 1); got != msg {
				t.Errorf("Open: %q\nRead: %q", got, msg)
			}
		})
	}
}

// TestTruncated cuts every test model at many points before the end of its
// last buffer: each must fail with an error, never a panic. (Cutting only
// the padding after the last buffer of an offset-layout file loses
// nothing.)
func TestTruncated(t *testing.T) {
	for _, path := range testModels(t) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		m, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		end := int64(len(data))
		if m.Layout == LayoutOffset {
			end = 0
			for _, b := range m.Buffers {
				if s, ok := b.Data.(*Section); ok {
					end = max(end, s.Offset()+s.Len())
				}
			}
		}
		m.Close()
		step := max(1, int(end)/97)
		for n := 0; n < int(end); n += step {
			m, err := Read(bytes.NewReader(data[:n]), int64(n), "cut.tflite")
			if err == nil {
				m.Close()
				t.Errorf("%s cut at %d of %d bytes: read succeeded", modelName(path), n, len(data))
			}
		}
	}
}

// TestSharedTableBomb builds a file whose tensors vector points 4000 times
// at one tensor with a 4000-dimension shape: 16 million shape elements from
// a 32 KB file. The decode budget must stop it.
func TestSharedTableBomb(t *testing.T) {
	data := sharedTablesModel(4000, 4000, 1)
	_, err := Read(bytes.NewReader(data), int64(len(data)), "bomb.tflite")
	if err == nil || !strings.Contains(err.Error(), "subgraph 0: flatbuffer unpacks to far more data than the file holds") {
		t.Fatalf("got %v, want a budget error naming subgraph 0", err)
	}
}
