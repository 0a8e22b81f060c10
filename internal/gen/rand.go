package gen

import "math/bits"

// stream is a splitmix64 generator: 64-bit state, one add and a
// multiply-xorshift finalizer per output. It is small, fast, passes
// BigCrush, and each weight gets its own, so generation needs no shared
// state and runs in parallel across tensors.
type stream struct{ s uint64 }

const golden64 = 0x9e3779b97f4a7c15

func (r *stream) next() uint64 {
	r.s += golden64
	return mix64(r.s)
}

func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// newStream returns the stream of the weight named key under seed: FNV-1a
// of the key, mixed with the seed, so different keys and different seeds
// give unrelated streams.
func newStream(seed uint64, key string) *stream {
	h := uint64(0xcbf29ce484222325)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= 0x100000001b3
	}
	return &stream{s: mix64(h ^ mix64(seed+golden64))}
}

// uniform returns a float64 in [0, 1) from the top 53 bits.
func (r *stream) uniform() float64 {
	return float64(r.next()>>11) * (1.0 / (1 << 53))
}

// intn returns an int in [0, n) (n > 0), by multiply-shift; the bias for
// the small n used here (channel counts) is below 2^-40.
func (r *stream) intn(n int) int {
	hi, _ := bits.Mul64(r.next(), uint64(n))
	return int(hi)
}
