package tflite

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// benchModels returns the files the read+write benchmarks run on: a
// synthetic model of 64 MiB of weights (four FLOAT32 [4096, 1024] weights
// of 16 MiB), written once into dir, and the largest model in
// testdata/models.
func benchModels(b *testing.B, dir string) map[string]string {
	b.Helper()
	synthetic := filepath.Join(dir, "synthetic64MiB.tflite")
	if _, err := os.Stat(synthetic); err != nil {
		m := syntheticModel(4096, 1024, pattern(1, 16<<20), pattern(2, 16<<20), pattern(3, 16<<20), pattern(4, 16<<20))
		if err := WriteFile(context.Background(), synthetic, m, WriteOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	largest, size := "", int64(0)
	for _, p := range testModels(b) {
		if fi, err := os.Stat(p); err == nil && fi.Size() > size {
			largest, size = p, fi.Size()
		}
	}
	return map[string]string{"synthetic64MiB": synthetic, modelName(largest): largest}
}

func fileSize(b *testing.B, path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return fi.Size()
}

// BenchmarkReadWrite opens a model and writes it back unchanged: with Write
// into a file (sequential, no sync) and with WriteFile (concurrent, fsync,
// rename). Compare with BenchmarkCopy on the same files.
func BenchmarkReadWrite(b *testing.B) {
	dir := b.TempDir()
	for name, path := range benchModels(b, dir) {
		out := filepath.Join(dir, "out-"+name+".tflite")
		b.Run(name+"/Write", func(b *testing.B) {
			b.SetBytes(fileSize(b, path))
			for b.Loop() {
				m, err := Open(path)
				if err != nil {
					b.Fatal(err)
				}
				f, err := os.Create(out)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := Write(f, m, WriteOptions{}); err != nil {
					b.Fatal(err)
				}
				f.Close()
				m.Close()
			}
		})
		b.Run(name+"/WriteFile", func(b *testing.B) {
			b.SetBytes(fileSize(b, path))
			for b.Loop() {
				m, err := Open(path)
				if err != nil {
					b.Fatal(err)
				}
				if err := WriteFile(context.Background(), out, m, WriteOptions{}); err != nil {
					b.Fatal(err)
				}
				m.Close()
			}
		})
	}
}

// BenchmarkCopy copies the same files with io.Copy, without and with the
// fsync that WriteFile does.
func BenchmarkCopy(b *testing.B) {
	dir := b.TempDir()
	for name, path := range benchModels(b, dir) {
		out := filepath.Join(dir, "copy-"+name+".tflite")
		for _, sync := range []bool{false, true} {
			sub := name + "/copy"
			if sync {
				sub += "+fsync"
			}
			b.Run(sub, func(b *testing.B) {
				b.SetBytes(fileSize(b, path))
				for b.Loop() {
					src, err := os.Open(path)
					if err != nil {
						b.Fatal(err)
					}
					dst, err := os.Create(out)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := io.Copy(dst, src); err != nil {
						b.Fatal(err)
					}
					if sync {
						dst.Sync()
					}
					dst.Close()
					src.Close()
				}
			})
		}
	}
}
