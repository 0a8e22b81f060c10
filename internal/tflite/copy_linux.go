package tflite

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// copyRange copies n bytes of src at srcOff to dst at dstOff with
// copy_file_range, which on one file system moves page-cache pages in the
// kernel (or shares the blocks, where the file system can). It returns
// errNoKernelCopy, with the count copied so far, when the kernel refuses
// (EXDEV across file systems, ENOSYS before Linux 4.5, EINVAL or
// EOPNOTSUPP for files it cannot copy). It stops early at the end of src.
func copyRange(dst *os.File, dstOff int64, src *os.File, srcOff, n int64) (int64, error) {
	defer runtime.KeepAlive(src)
	defer runtime.KeepAlive(dst)
	var done int64
	for done < n {
		roff, woff := srcOff+done, dstOff+done
		m, err := unix.CopyFileRange(int(src.Fd()), &roff, int(dst.Fd()), &woff, int(min(n-done, 1<<30)), 0)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EXDEV), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EINVAL),
			errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EBADF), errors.Is(err, unix.EPERM):
			return done, errNoKernelCopy
		case err != nil:
			return done, fmt.Errorf("copying %d bytes from %s at %#x: %w", n-done, src.Name(), roff, err)
		case m == 0:
			return done, nil // end of src
		}
		done += int64(m)
	}
	return done, nil
}
