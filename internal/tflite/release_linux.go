package tflite

import (
	"os"
	"syscall"
	"unsafe"
)

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
