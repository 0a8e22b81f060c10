package interp

// The integer FULLY_CONNECTED's products with the int tiles of
// gemm_amd64.s (i16Tile6: VPMADDWD of int16 pairs into int32 lanes). The
// activations (x − zp_in, within int16 for both widths) are the tile's
// rows, the INT8 filter rows are packed into int16-pair panels chunk by
// chunk (packInt8), as hybridFCVec does. Integer sums are exact in any
// order, so the results equal dotRows':
//   - int8 activations: |x| ≤ 255, |w| ≤ 128, the sums int32 like the
//     scalar kernel's (and the runtime's); wrapping, were it to happen,
//     is the same modulo 2^32.
//   - int16 activations: one pair is at most 2·2^15·2^7 = 2^23 in
//     magnitude, so a chunk of at most 255 pairs (254: even, which the
//     packer takes two pairs at a time) sums within int32 with no overflow; each chunk's sums are then added in int64, the 16x8
//     kernels' accumulator.

// wideChunk is how many pairs an int32 lane sums with int16 activations
// (at most 255).
const wideChunk = 254

// intDotsVecOK reports whether intDotsVec runs.
func intDotsVecOK(M, K, N int) bool { return useSIMD && M > 0 && K > 0 && N > 0 }

// intDotsVec sets acc[m·N+j] to dotRows' acc[j] for activation row m of x
// (M rows of K, every value within int16) and the N filter rows of K.
func intDotsVec(threads int, acc []int64, x []int32, M, K, N int, filter []int8, wide bool) {
	P := (K + 1) / 2
	L := 2 * P
	cb := callPool.Get().(*callBuffers)
	defer callPool.Put(cb)
	a16 := grow(&cb.a16, M*L)
	for m := 0; m < M; m++ {
		dst := a16[m*L : m*L+L]
		for k, v := range x[m*K : (m+1)*K][:K] {
			dst[k] = int16(v)
		}
		if L > K {
			dst[K] = 0
		}
	}
	gs := groups(a16, M, L, tileM)
	chunk := chunkK
	if wide {
		chunk = wideChunk
	}
	scr := make([]*intScratch, max(threads, 1))
	defer putScratch(&intPool, scr)
	parallel(threads, N, tileN, func(worker, lo, hi int) {
		s := scr[worker]
		if s == nil {
			s = intPool.Get().(*intScratch)
			scr[worker] = s
			s.panel = grow(&s.panel, chunk*tileN)
			s.sums = grow(&s.sums, tileN)
			s.acc = grow(&s.acc, len(gs)*tileM*tileN)
			if wide {
				s.acc64 = grow(&s.acc64, len(gs)*tileM*tileN)
			}
		}
		W := hi - lo
		rows := filter[lo*K : hi*K]
		clear(s.acc)
		if wide {
			clear(s.acc64)
		}
		for p0 := 0; p0 < P; p0 += chunk {
			p1 := min(p0+chunk, P)
			packInt8(s.panel, s.sums, rows, K, p0, p1, W, K)
			for i, ag := range gs {
				i16Tile6(&s.acc[i*tileM*tileN], &ag[2*p0], L, &s.panel[0], p1-p0)
			}
			if wide {
				for i, v := range s.acc {
					s.acc64[i] += int64(v)
				}
				clear(s.acc)
			}
		}
		for m := 0; m < M; m++ {
			o := acc[m*N+lo : m*N+hi]
			if wide {
				copy(o, s.acc64[m*tileN:m*tileN+W])
				continue
			}
			for j, v := range s.acc[m*tileN : m*tileN+W] {
				o[j] = int64(v)
			}
		}
	})
}
