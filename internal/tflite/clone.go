package tflite

import (
	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// Clone returns a copy of m whose tables can be changed without touching m.
// Buffer contents are shared (they are read-only); the copy does not own the
// file m was read from, so m must stay open while the copy is used.
func (m *Model) Clone() (*Model, error) {
	b := flatbuffers.NewBuilder(1 << 16)
	b.Finish(m.Meta.Pack(b))
	raw := b.FinishedBytes()
	var meta *fb.ModelT
	err := fb.Decode(int64(len(raw))*8+1<<20, func() error {
		meta = fb.GetRootAsModel(raw, 0).UnPack()
		return nil
	})
	if err != nil {
		return nil, err
	}
	c := *m
	c.Meta = meta
	c.Buffers = append([]Buffer(nil), m.Buffers...)
	c.closer = nil
	// LargeCustomOptions is keyed by operator: re-key it to the copy's.
	if len(m.LargeCustomOptions) > 0 {
		c.LargeCustomOptions = make(map[*fb.OperatorT]Content, len(m.LargeCustomOptions))
		for si, sg := range m.Meta.Subgraphs {
			for oi, op := range sg.Operators {
				if content, ok := m.LargeCustomOptions[op]; ok {
					c.LargeCustomOptions[meta.Subgraphs[si].Operators[oi]] = content
				}
			}
		}
	}
	return &c, nil
}
