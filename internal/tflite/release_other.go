//go:build !linux

package tflite

// releaseMapped does nothing where package syscall has no madvise: the
// pages a stream passed stay resident until the kernel reclaims them.
func (s *source) releaseMapped(off, end int64) {}
