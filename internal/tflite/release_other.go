//go:build !linux

package tflite

// releasePages is a no-op where madvise is not available from package
// syscall: the pages a stream passed stay resident until the kernel
// reclaims them.
func releasePages(mapping, done []byte) {}
