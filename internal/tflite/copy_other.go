//go:build !linux

package tflite

import "os"

// copyRange has no kernel copy to offer here: the caller reads and writes.
func copyRange(dst *os.File, dstOff int64, src *os.File, srcOff, n int64) (int64, error) {
	return 0, errNoKernelCopy
}
