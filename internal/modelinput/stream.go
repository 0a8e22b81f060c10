package modelinput

// golden32 is 2^32/φ, the Weyl step of Stream.
const golden32 = 0x9E3779B9

// Stream is a deterministic pseudo-random sequence of uint32: a Weyl
// sequence (step 0x9E3779B9) started at lo32(seed) ^ hi32(seed) ^
// (index+1)·0x9E3779B9, each step mixed by murmur3's 32-bit finalizer.
// index separates the streams of the inputs of one request. The same seed
// and index give the same values on every machine; runner.mjs (seededFill)
// implements the same sequence, so the sequence is a contract: do not
// change it.
type Stream struct{ state uint32 }

// NewStream starts the stream of input index for seed.
func NewStream(seed int64, index int) *Stream {
	return &Stream{state: uint32(seed) ^ uint32(uint64(seed)>>32) ^ uint32(index+1)*golden32}
}

// Next returns the next value.
func (s *Stream) Next() uint32 {
	s.state += golden32
	z := s.state
	z = (z ^ z>>16) * 0x85EBCA6B
	z = (z ^ z>>13) * 0xC2B2AE35
	return z ^ z>>16
}

// Float returns the next value as a float32 uniform in [-1, 1): 24 random
// bits, exact in float32.
func (s *Stream) Float() float32 {
	return float32(int32(s.Next()>>8)-1<<23) / (1 << 23)
}

// Below returns the next value reduced to [0, n) (n > 0; n = 0 counts as
// 4, the range ids get when no vocabulary is known). The modulo bias is at
// most n/2^32 and part of the contract with runner.mjs.
func (s *Stream) Below(n uint32) uint32 {
	if n == 0 {
		n = DefaultIDs
	}
	return s.Next() % n
}

// DefaultIDs is the range [0, DefaultIDs) of integer inputs that index no
// known table.
const DefaultIDs = 4
