package interp

import "github.com/qpipe/qpipe/internal/quant"

// The vector forms of matmulF32 and hybridFC (tiles in gemm_amd64.s).
// They compute every output element with the scalar kernels' operations in
// the scalar order, vectorised across output columns: a worker packs its
// block of 16 weight rows transposed into a panel (panel[k·16+j] = W[lo+j][k],
// zero columns past the last row) and runs a 6×16 tile over each group of
// 6 activation rows. Rows past M are zeros in a padded copy of the last
// group; their results are dropped.

const tileM, tileN = 6, nBlock

// padRows returns the rows [g, g+tileM) of a (M rows of ld), copied into
// pad with zero rows after the last when fewer than tileM remain.
func padRows[E float32 | int16](a []E, M, ld, g int, pad []E) []E {
	if g+tileM <= M {
		return a[g*ld : (g+tileM)*ld]
	}
	clear(pad)
	copy(pad, a[g*ld:M*ld])
	return pad
}

// matmulF32Vec is matmulF32 with the f32 tile (K > 0, M > 0).
func matmulF32Vec(threads int, out, a []float32, M, K, N int, w *weight, wOff int) {
	type scratch struct{ rows, panel, tile, pad []float32 }
	scr := make([]scratch, max(threads, 1))
	parallel(threads, N, nBlock, func(worker, lo, hi int) {
		s := &scr[worker]
		if s.panel == nil {
			s.panel = make([]float32, K*tileN)
			s.tile = make([]float32, tileM*tileN)
			s.pad = make([]float32, tileM*K)
		}
		var rows []float32
		if w.kind == wFloat32 {
			rows = w.f32[wOff+lo*K : wOff+hi*K]
		} else {
			if s.rows == nil {
				s.rows = make([]float32, nBlock*K)
			}
			rows = s.rows[:(hi-lo)*K]
			w.decode(rows, wOff+lo*K)
		}
		W := hi - lo
		packF32(s.panel, rows, K, W)
		for g := 0; g < M; g += tileM {
			clear(s.tile)
			ag := padRows(a, M, K, g, s.pad)
			f32Tile6(&s.tile[0], &ag[0], K, &s.panel[0], K)
			for m := g; m < min(g+tileM, M); m++ {
				copy(out[m*N+lo:m*N+hi], s.tile[(m-g)*tileN:(m-g)*tileN+W])
			}
		}
	})
}

// packF32 writes the transposed panel of W rows of K.
func packF32(panel, rows []float32, K, W int) {
	panel = panel[:K*tileN]
	if W < tileN {
		clear(panel)
	}
	for j := 0; j < W; j++ {
		r := rows[j*K : (j+1)*K]
		for k, v := range r {
			panel[k*tileN+j] = v
		}
	}
}

// hybridVecOK reports whether hybridFCVec takes this weight: the int16
// pairs of a block must not straddle two blocks.
func hybridVecOK(w *weight, M, K int) bool {
	return useSIMD && M > 0 && K > 0 && w.block%2 == 0
}

// hybridFCVec is hybridFC's GEMM and epilogues with the int tiles; qa and
// rq are the quantized activation rows.
func hybridFCVec(threads int, out []float32, qa []int8, rq []rowQuant, M, K, N int, w *weight, bias []float32) {
	// The activations as int16, K rounded up to pairs (a zero pads an odd K).
	P := (K + 1) / 2
	L := 2 * P
	a16 := make([]int16, M*L)
	for m := 0; m < M; m++ {
		dst := a16[m*L : m*L+K]
		for k, v := range qa[m*K : (m+1)*K][:len(dst)] {
			dst[k] = int16(v)
		}
	}
	B, nb, sumLen := w.block, 1, K // sumLen: the span of each weight sum
	if B > 0 {
		nb, sumLen = K/B, B
	}
	type scratch struct {
		rows   []int8
		panel  []int32
		sums   []int32
		tile   []int32
		ftile  []float32
		scales []float32
		pad    []int16
	}
	scr := make([]scratch, max(threads, 1))
	parallel(threads, N, nBlock, func(worker, lo, hi int) {
		s := &scr[worker]
		if s.panel == nil {
			s.panel = make([]int32, P*tileN)
			s.sums = make([]int32, nb*tileN)
			s.pad = make([]int16, tileM*L)
			s.tile = make([]int32, tileM*tileN)
			s.ftile = make([]float32, tileM*tileN)
			if B > 0 {
				s.scales = make([]float32, nb*tileN)
			}
		}
		W := hi - lo
		if w.kind == wInt4 && K%2 == 0 {
			packInt4(s.panel, s.sums, w.raw[lo*K/2:hi*K/2], K, W, sumLen)
		} else {
			var rows []int8
			if w.kind == wInt8 {
				rows = quant.BytesInt8(w.raw[lo*K : hi*K])
			} else {
				if s.rows == nil {
					s.rows = make([]int8, nBlock*K)
				}
				rows = s.rows[:W*K]
				w.ints(rows, lo*K)
			}
			packInt8(s.panel, s.sums, rows, K, W, sumLen)
		}
		if B == 0 {
			for g := 0; g < M; g += tileM {
				ag := padRows(a16, M, L, g, s.pad)
				i16Tile6(&s.tile[0], &ag[0], L, &s.panel[0], P)
				for m := g; m < min(g+tileM, M); m++ {
					acc := s.tile[(m-g)*tileN : (m-g)*tileN+W]
					o := out[m*N+lo : m*N+hi][:len(acc)]
					sc, zp := rq[m].scale, rq[m].zp
					for j, v := range acc {
						ch, _ := w.channel((lo + j) * K)
						y := float32(float32(float32(v-zp*s.sums[j])*sc) * ch)
						if bias != nil {
							y += bias[lo+j]
						}
						o[j] = y
					}
				}
			}
			return
		}
		// Blockwise: the bf16 block scales [block][column] and ksum, then
		// the float sums start at ksum·zp_a and take each block in turn.
		var ksum [tileN]float32
		for b := 0; b < nb; b++ {
			sc := s.scales[b*tileN : (b+1)*tileN]
			for j := 0; j < W; j++ {
				bs := w.blockScaleBF16(((lo+j)*K + b*B) / B)
				sc[j] = bs
				ksum[j] -= float32(float32(s.sums[b*tileN+j]) * bs)
			}
			clear(sc[W:])
		}
		for g := 0; g < M; g += tileM {
			ag := padRows(a16, M, L, g, s.pad)
			f := s.ftile[:tileM*tileN]
			for r := 0; r < tileM; r++ {
				fr := f[r*tileN : (r+1)*tileN]
				if g+r >= M {
					clear(fr)
					continue
				}
				zp := float32(rq[g+r].zp)
				for j := range fr {
					fr[j] = ksum[j] * zp
				}
			}
			qbTile6(&f[0], &ag[0], L, &s.panel[0], B/2, nb, &s.scales[0])
			for m := g; m < min(g+tileM, M); m++ {
				fr := f[(m-g)*tileN : (m-g)*tileN+W]
				o := out[m*N+lo : m*N+hi][:len(fr)]
				sc := rq[m].scale
				for j, v := range fr {
					y := float32(v * sc)
					if bias != nil {
						y += bias[lo+j]
					}
					o[j] = y
				}
			}
		}
	})
}

// packInt8 writes the int16-pair panel of W int8 rows of K (panel[p·16+j]
// = w[j][2p] | w[j][2p+1]<<16, a zero past K and past W) and the sums of
// each block of B elements of each row in sums[b·16+j].
func packInt8(panel, sums []int32, rows []int8, K, W, B int) {
	P := (K + 1) / 2
	panel = panel[:P*tileN]
	if W < tileN {
		clear(panel)
	}
	for j := 0; j < W; j++ {
		r := rows[j*K : (j+1)*K]
		for b0 := 0; b0 < K; b0 += B {
			var s int32
			blk := r[b0 : b0+B]
			for i := 0; i+1 < len(blk); i += 2 {
				x, y := blk[i], blk[i+1]
				s += int32(x) + int32(y)
				panel[(b0+i)/2*tileN+j] = int32(uint16(int16(x))) | int32(y)<<16
			}
			if len(blk)%2 == 1 {
				x := blk[len(blk)-1]
				s += int32(x)
				panel[(b0+len(blk)-1)/2*tileN+j] = int32(uint16(int16(x)))
			}
			sums[b0/B*tileN+j] = s
		}
	}
}

// packInt4 is packInt8 for packed int4 rows (K even: each byte is a pair).
func packInt4(panel, sums []int32, raw []byte, K, W, B int) {
	P := K / 2
	panel = panel[:P*tileN]
	if W < tileN {
		clear(panel)
	}
	for j := 0; j < W; j++ {
		r := raw[j*P : (j+1)*P]
		for b0 := 0; b0 < P; b0 += B / 2 {
			var s int32
			for p, v := range r[b0 : b0+B/2] {
				x, y := int8(v<<4)>>4, int8(v)>>4
				s += int32(x) + int32(y)
				panel[(b0+p)*tileN+j] = int32(uint16(int16(x))) | int32(y)<<16
			}
			sums[b0*2/B*tileN+j] = s
		}
	}
}
