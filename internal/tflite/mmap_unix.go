//go:build unix

package tflite

import (
	"os"
	"syscall"
	"unsafe"
)

// mmapFile maps size bytes of f read-only. The mapping survives closing f.
func mmapFile(f *os.File, size int64) ([]byte, error) {
	if size <= 0 || int64(int(size)) != size {
		return nil, syscall.EINVAL
	}
	return syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
}

func munmap(b []byte) error { return syscall.Munmap(b) }

// releasePages drops from the resident set the whole pages of mapping that
// lie inside done. The file is mapped shared and read-only, so a later
// access faults the same bytes back in from the page cache.
func releasePages(mapping, done []byte) {
	page := uintptr(os.Getpagesize())
	base := uintptr(unsafe.Pointer(unsafe.SliceData(mapping)))
	start := uintptr(unsafe.Pointer(unsafe.SliceData(done))) - base
	end := start + uintptr(len(done))
	start = (start + page - 1) &^ (page - 1)
	end &^= page - 1
	if end <= start {
		return
	}
	_ = syscall.Madvise(mapping[start:end], syscall.MADV_DONTNEED)
}
