package tflite

import (
	"os"
	"testing"
)

// BenchmarkOpenVerify compares, on every test model of at least 256 KiB,
// the structural verification of the flatbuffer alone with a whole Open
// (mapping, verification, unpacking, validation) and Close: what the
// verifier adds to loading. Bytes are the file's.
func BenchmarkOpenVerify(b *testing.B) {
	for _, path := range testModels(b) {
		data, err := os.ReadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		if len(data) < 256<<10 {
			continue
		}
		b.Run(modelName(path)+"/verify", func(b *testing.B) {
			m, err := Open(path)
			if err != nil {
				b.Fatal(err)
			}
			end := int64(len(data))
			if m.Layout == LayoutOffset {
				b.Skip("offset layout: the flatbuffer part is a prefix")
			}
			m.Close()
			b.SetBytes(end)
			for b.Loop() {
				d := &decoder{name: "bench", buf: data, fileSize: end}
				if err := d.verifyFlatbuffer(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(modelName(path)+"/open", func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				m, err := Open(path)
				if err != nil {
					b.Fatal(err)
				}
				m.Close()
			}
		})
	}
}
