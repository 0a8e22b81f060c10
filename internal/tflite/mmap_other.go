//go:build !unix

package tflite

import (
	"errors"
	"os"
)

var errNoMmap = errors.New("memory mapping not supported on this system")

func mmapFile(f *os.File, size int64) ([]byte, error) { return nil, errNoMmap }

func munmap(b []byte) error { return nil }
