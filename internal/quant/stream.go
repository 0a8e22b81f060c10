package quant

import (
	"math"
	"sync/atomic"
)

// Reading ahead. A quantize loop streaming a tensor from memory keeps few
// cache misses in flight (some twenty instructions per element), and the
// hardware prefetcher does not make up for it. So the kernels whose
// quantize loop reads memory (QuantizeInt8, QuantizeInt4, QuantizeRowsInt8)
// go in chunks of streamChunk elements and, before each, load one word of
// every cache line touchDistance elements ahead: a burst of independent
// misses that overlap, about 2x faster on a 256 MiB tensor. QuantizeBlocksInt4
// does not (its scale pass keeps enough misses in flight; touching made it
// slower). The loads change no output.

const (
	lineFloats    = 16   // float32 values per 64-byte cache line
	streamChunk   = 256  // elements between bursts (1 KiB of float32)
	touchDistance = 1024 // how far ahead a burst reads (4 KiB)
)

// touched keeps the result of the loads (unused loads would be removed).
var touched atomic.Uint32

// touch loads one float32 of each cache line of s[lo:hi), clipped to s,
// and returns their bits ORed. Not when the vector kernels run: eight lanes
// at a time keep enough misses in flight, and the bursts only cost (256 MiB
// rows, int8: 6.4 GB/s without them, 5.7 with; the 1 GB decoder 0.24 s
// against 0.28).
func touch(s []float32, lo, hi int) (t uint32) {
	if useAVX2 {
		return 0
	}
	hi = min(hi, len(s))
	for i := lo; i < hi; i += lineFloats {
		t |= math.Float32bits(s[i])
	}
	return t
}
