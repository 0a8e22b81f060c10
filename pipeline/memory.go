package pipeline

// Memory estimate of a job, for `qpipe run --jobs N`.
//
// The input is memory-mapped and each weight is read once, a chunk of rows
// at a time, so what a job holds in anonymous memory is: a fixed part (the
// model's tables, the per-chunk buffers and their pools, the Go runtime),
// a part proportional to the weights (per-channel scales, the tables of the
// output) and, for blockwise int4, the float16 block scales, written last
// (one 2-byte scale per B float32 weights, i.e. bytes_in/(2B)). Measured
// peaks (README, Performance): 22 MiB for a 1 GB model, 186 MiB (int8) and
// 424 MiB (int4, block 32) for a 26.8 GB one; the estimate stays above them.
// Branches (recipes) run one after the other, so a job needs its largest
// branch; so do a bundle's sections (each quantized and written before the
// next), so a branch needs its largest section's part. Page-cache pages of the mapped input are not counted: the kernel
// reclaims them. A job with gptq weights also holds their calibration rows
// and factors, which its plan estimates (Plan.CalibrationBytes).
const (
	// MemoryBase is the fixed part of a job's memory.
	MemoryBase = 64 << 20
	// MemoryPerInputByte is the proportional part: 1/128 of the weights.
	MemoryPerInputByte = 1.0 / 128
)

// MemoryEstimate is the peak anonymous memory, in bytes, of running the
// branches whose plans are given.
func MemoryEstimate(plans []*Plan) int64 {
	var peak int64
	for _, p := range plans {
		if p == nil {
			continue
		}
		type sums struct{ in, scales int64 }
		bySection := map[int]*sums{} // -1: a bare model
		for _, w := range p.Weights {
			sec := -1
			if w.Section != nil {
				sec = *w.Section
			}
			s := bySection[sec]
			if s == nil {
				s = &sums{}
				bySection[sec] = s
			}
			s.in += w.BytesIn
			if w.Scheme != nil && w.BlockSize != nil && *w.BlockSize > 0 {
				s.scales += w.BytesIn / int64(2**w.BlockSize)
			}
		}
		for _, s := range bySection {
			peak = max(peak, int64(float64(s.in)*MemoryPerInputByte)+s.scales+p.CalibrationBytes)
		}
	}
	return MemoryBase + peak
}
