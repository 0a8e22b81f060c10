package tflite

import "syscall"

// releaseMapped drops the whole pages of the mapping within [off, end)
// from the process's resident set (a stream that has passed them keeps the
// resident set small). The file is mapped shared and read-only, so a later
// access faults the same bytes back in from the page cache.
func (s *source) releaseMapped(off, end int64) {
	off = (off + pageSize - 1) &^ (pageSize - 1)
	end = min(end, int64(len(s.data))) &^ (pageSize - 1)
	if !s.mapped || end <= off || s.closed.Load() {
		return
	}
	_ = syscall.Madvise(s.data[off:end], syscall.MADV_DONTNEED)
}
