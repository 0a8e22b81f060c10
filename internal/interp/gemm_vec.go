package interp

import (
	"sync"

	"github.com/qpipe/qpipe/internal/quant"
)

// The vector forms of matmulF32 and hybridFC (tiles in gemm_amd64.s).
// They compute every output element with the scalar kernels' operations in
// the scalar order, vectorised across output columns. A worker takes a
// block of weight rows (output columns: 32 for float32, 16 for the integer
// tiles) and, chunk by chunk of k, packs it transposed into a panel that
// stays in the L1 cache (panel[k·width+j] = W[lo+j][k], zero columns past
// the last row), then runs its tile (3×32 float32, 6×16 integer) over each
// group of activation rows; the tile's sums live in a per-worker [rows]
// [width] buffer between chunks (float32 or int32, exactly what the scalar
// accumulator holds), so chunking changes no bit. A last group of fewer
// rows reads a zero-padded copy; its extra rows are dropped. How the work
// is split does not change any element, so the blocks need not be the
// scalar kernels' (nBlock).

// The integer tiles: 6 rows × 16 columns.
const tileM, tileN = 6, 16

// chunkK is how many k (f32) or k pairs (int) a panel chunk holds.
const chunkK = 256

// Scratch is kept between calls (a GEMM would otherwise allocate up to a
// megabyte, and the collector run every few calls): per-worker panels and
// sums, and a call's converted activations. grow hands out a slice of n
// elements, not cleared: every user writes what it reads.
type f32Scratch struct{ rows, panel, acc []float32 }

type intScratch struct {
	rows              []int8
	panel, sums, corr []int32
	acc               []int32
	acc64             []int64 // intDotsVec's int16 sums
	facc, scales      []float32
}

type callBuffers struct {
	qa  []int8
	a16 []int16
	au  []uint8
}

var (
	f32Pool  = sync.Pool{New: func() any { return new(f32Scratch) }}
	intPool  = sync.Pool{New: func() any { return new(intScratch) }}
	callPool = sync.Pool{New: func() any { return new(callBuffers) }}
)

func grow[T any](s *[]T, n int) []T {
	if cap(*s) < n {
		*s = make([]T, n)
	}
	*s = (*s)[:n]
	return *s
}

// putScratch returns the workers' scratch to its pool.
func putScratch[S any](p *sync.Pool, scr []*S) {
	for _, s := range scr {
		if s != nil {
			p.Put(s)
		}
	}
}

// groups returns the row groups of a (M rows of ld): the start of each
// group of rows rows, the last one a zero-padded copy when M is not a
// multiple of rows.
func groups[E float32 | int16 | uint8](a []E, M, ld, rows int) [][]E {
	gs := make([][]E, 0, (M+rows-1)/rows)
	for g := 0; g < M; g += rows {
		if g+rows <= M {
			gs = append(gs, a[g*ld:(g+rows)*ld])
			continue
		}
		pad := make([]E, rows*ld)
		copy(pad, a[g*ld:M*ld])
		gs = append(gs, pad)
	}
	return gs
}

// The float32 tile is 3 rows × 32 columns: one broadcast of an activation
// feeds 4 multiplies (the broadcasts, not the arithmetic, bound a 6×16
// tile: without them it ran at the machine's mul+add peak).
const f32M, f32N = 3, 32

// matmulF32Vec is matmulF32 with the f32 tile (K > 0, M > 0).
func matmulF32Vec(threads int, out, a []float32, M, K, N int, w *weight, wOff int) {
	matmulF32VecLayout(threads, out, a, M, K, N, w, wOff, false)
}

// matmulF32VecLayout is matmulF32Vec with the weight's N rows of K, or,
// with kn, its K rows of N (a BATCH_MATMUL's right operand without adj_y):
// the panels are the same values either way (packF32, packF32KN), so the
// bits are too, and [K, N] needs no transposed copy.
func matmulF32VecLayout(threads int, out, a []float32, M, K, N int, w *weight, wOff int, kn bool) {
	gs := groups(a, M, K, f32M)
	var whole []float32 // the [K, N] weight as float32
	if kn {
		if w.kind == wFloat32 {
			whole = w.f32[wOff : wOff+K*N]
		} else {
			whole = make([]float32, K*N)
			w.decode(whole, wOff)
		}
	}
	scr := make([]*f32Scratch, max(threads, 1))
	defer putScratch(&f32Pool, scr)
	parallel(threads, N, f32N, func(worker, lo, hi int) {
		s := scr[worker]
		if s == nil {
			s = f32Pool.Get().(*f32Scratch)
			scr[worker] = s
			s.panel = grow(&s.panel, chunkK*f32N)
			s.acc = grow(&s.acc, len(gs)*f32M*f32N)
		}
		var rows []float32
		switch {
		case kn:
		case w.kind == wFloat32:
			rows = w.f32[wOff+lo*K : wOff+hi*K]
		default:
			rows = grow(&s.rows, (hi-lo)*K)
			w.decode(rows, wOff+lo*K)
		}
		W := hi - lo
		clear(s.acc)
		for k0 := 0; k0 < K; k0 += chunkK {
			k1 := min(k0+chunkK, K)
			if kn {
				packF32KN(s.panel, whole, N, lo, W, k0, k1)
			} else {
				packF32(s.panel, rows, K, k0, k1, W)
			}
			for i, ag := range gs {
				f32Tile3x32(&s.acc[i*f32M*f32N], &ag[k0], K, &s.panel[0], k1-k0)
			}
		}
		for m := 0; m < M; m++ {
			copy(out[m*N+lo:m*N+hi], s.acc[m*f32N:m*f32N+W])
		}
	})
}

// packF32 writes the transposed panel (rows of f32N) of k in [k0, k1) of W
// rows of K: whole groups of 8 rows and 8 k by packF32x8, the rest here;
// zero columns past W.
func packF32(panel, rows []float32, K, k0, k1, W int) {
	n := k1 - k0
	panel = panel[:n*f32N]
	if W < f32N {
		clear(panel)
	}
	j0, n8 := 0, 0
	if useSIMD {
		j0, n8 = W&^7, n&^7
		for j := 0; j < j0 && n8 > 0; j += 8 {
			packF32x8(&panel[j], &rows[j*K+k0], K, n8, f32N)
		}
	}
	for j := 0; j < W; j++ {
		kFrom := 0
		if j < j0 {
			kFrom = n8
		}
		for k, v := range rows[j*K+k0+kFrom : j*K+k1] {
			panel[(kFrom+k)*f32N+j] = v
		}
	}
}

// packF32KN is packF32 for a weight of K rows of N (w): the panel's row k
// is w's row k, columns [lo, lo+W), zero past W.
func packF32KN(panel, w []float32, N, lo, W, k0, k1 int) {
	panel = panel[:(k1-k0)*f32N]
	for k := k0; k < k1; k++ {
		dst := panel[(k-k0)*f32N : (k-k0+1)*f32N]
		copy(dst, w[k*N+lo:k*N+lo+W])
		clear(dst[W:])
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
	cb := callPool.Get().(*callBuffers)
	defer callPool.Put(cb)
	a16 := grow(&cb.a16, M*L)
	for m := 0; m < M; m++ {
		dst := a16[m*L : m*L+L]
		for k, v := range qa[m*K : (m+1)*K][:K] {
			dst[k] = int16(v)
		}
		if L > K {
			dst[K] = 0
		}
	}
	gs := groups(a16, M, L, tileM)
	// Int4 in blocks of 32 takes the u8·s8 tile (q4Tile6): activations as
	// q+128 bytes.
	q4 := w.kind == wInt4 && w.block == 32
	var gu [][]uint8
	if q4 {
		au := grow(&cb.au, M*K)
		for i, v := range qa[:M*K] {
			au[i] = uint8(v) ^ 0x80
		}
		gu = groups(au, M, K, tileM)
	}
	// A chunk is whole blocks of pairs; sums cover a block (or the row).
	B, nb, sumLen, chunk := w.block, 1, K, chunkK
	if B > 0 {
		nb, sumLen = K/B, B
		chunk = max(1, chunkK/(B/2)) * (B / 2)
	}
	scr := make([]*intScratch, max(threads, 1))
	defer putScratch(&intPool, scr)
	parallel(threads, N, tileN, func(worker, lo, hi int) {
		s := scr[worker]
		if s == nil {
			s = intPool.Get().(*intScratch)
			scr[worker] = s
			if B > 0 {
				s.panel = grow(&s.panel, P*tileN)
			} else {
				s.panel = grow(&s.panel, chunk*tileN)
			}
			s.sums = grow(&s.sums, nb*tileN)
			if B > 0 {
				s.scales = grow(&s.scales, nb*tileN)
				s.facc = grow(&s.facc, len(gs)*tileM*tileN)
				s.corr = grow(&s.corr, nb*tileN)
			} else {
				s.acc = grow(&s.acc, len(gs)*tileM*tileN)
			}
		}
		W := hi - lo
		var rows []int8
		var raw4 []byte // int4 rows of even K: pairs are bytes
		switch {
		case w.kind == wInt4 && K%2 == 0:
			raw4 = w.raw[lo*K/2 : hi*K/2]
		case w.kind == wInt8:
			rows = quant.BytesInt8(w.raw[lo*K : hi*K])
		default:
			rows = grow(&s.rows, W*K)
			w.ints(rows, lo*K)
		}
		pack := func(p0, p1 int) {
			if raw4 != nil {
				packInt4(s.panel, s.sums, raw4, K, p0, p1, W, sumLen)
			} else {
				packInt8(s.panel, s.sums, rows, K, p0, p1, W, sumLen)
			}
		}
		if B == 0 {
			clear(s.acc)
			for p0 := 0; p0 < P; p0 += chunk {
				p1 := min(p0+chunk, P)
				pack(p0, p1)
				for i, ag := range gs {
					i16Tile6(&s.acc[i*tileM*tileN], &ag[2*p0], L, &s.panel[0], p1-p0)
				}
			}
			var chs [tileN]float32
			for j := range W {
				chs[j], _ = w.channel((lo + j) * K)
			}
			for m := 0; m < M; m++ {
				acc := s.acc[m*tileN : m*tileN+W]
				o := out[m*N+lo : m*N+hi][:len(acc)]
				sc, zp := rq[m].scale, rq[m].zp
				for j, v := range acc {
					y := float32(float32(float32(v-zp*s.sums[j])*sc) * chs[j])
					if bias != nil {
						y += bias[lo+j]
					}
					o[j] = y
				}
			}
			return
		}
		// Blockwise: the whole panel first (the float sums start at
		// ksum·zp_a, ksum = −Σ_b float(Σ w)·scale_b in block order, which
		// needs every block's weight sum), the bf16 block scales
		// [block][column], then each chunk of whole blocks over every row
		// group, blocks in order.
		if q4 {
			packQ4(s.panel, s.sums, raw4, K, W)
		} else {
			pack(0, P)
		}
		clear(s.scales)
		for j := 0; j < W; j++ {
			w.blockScalesBF16(s.scales[j:], tileN, (lo+j)*nb, nb)
		}
		var ksum [tileN]float32
		for b := 0; b < nb; b++ {
			sc := s.scales[b*tileN : (b+1)*tileN]
			for j := 0; j < W; j++ {
				ksum[j] -= float32(float32(s.sums[b*tileN+j]) * sc[j])
			}
		}
		for i := range gs {
			for r := 0; r < tileM; r++ {
				fr := s.facc[(i*tileM+r)*tileN : (i*tileM+r+1)*tileN]
				m := i*tileM + r
				if m >= M {
					clear(fr)
					continue
				}
				zp := float32(rq[m].zp)
				for j := range fr {
					fr[j] = ksum[j] * zp
				}
			}
		}
		if q4 {
			for i, v := range s.sums {
				s.corr[i] = 128 * v
			}
			for b0 := 0; b0 < nb; b0 += chunk / 16 {
				b1 := min(b0+chunk/16, nb)
				for i, ag := range gu {
					q4Tile6(&s.facc[i*tileM*tileN], &ag[32*b0], K, &s.panel[8*b0*tileN], b1-b0, &s.scales[b0*tileN], &s.corr[b0*tileN])
				}
			}
		}
		for p0 := 0; p0 < P && !q4; p0 += chunk {
			p1 := min(p0+chunk, P)
			b0 := 2 * p0 / B
			for i, ag := range gs {
				qbTile6(&s.facc[i*tileM*tileN], &ag[2*p0], L, &s.panel[p0*tileN], B/2, (p1-p0)*2/B, &s.scales[b0*tileN])
			}
		}
		for m := 0; m < M; m++ {
			fr := s.facc[m*tileN : m*tileN+W]
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
	})
}

// packPairs walks pairs [p0, p1) block by block (bp pairs a block): f
// packs pairs [q0, q1) of one block and adds each row's elements to s,
// which holds the block's sums so far (zero at the block's first pair) and
// is stored back to sums[b·16+j]. The panel rows of the span are cleared
// first when W < 16 (zero columns).
func packPairs(panel, sums []int32, p0, p1, W, bp int, f func(q0, q1 int, s *[tileN]int32)) {
	if W < tileN {
		clear(panel[:(p1-p0)*tileN])
	}
	for q0 := p0; q0 < p1; {
		b := q0 / bp
		q1 := min((b+1)*bp, p1)
		var s [tileN]int32
		if q0 > b*bp { // the block began in an earlier chunk
			copy(s[:W], sums[b*tileN:b*tileN+W])
		}
		f(q0, q1, &s)
		copy(sums[b*tileN:b*tileN+W], s[:W])
		q0 = q1
	}
}

// pair is the panel's int32 of two int16 elements.
func pair(x, y int8) int32 { return int32(uint16(int16(x))) | int32(y)<<16 }

// packInt8 writes the int16-pair panel of pairs [p0, p1) of W int8 rows of
// K (panel[(p−p0)·16+j] = w[j][2p] | w[j][2p+1]<<16, a zero past K and past
// W) and the sums of each block of sumLen elements in sums[b·16+j]
// (complete once the block's last pair is packed).
func packInt8(panel, sums []int32, rows []int8, K, p0, p1, W, sumLen int) {
	packPairs(panel, sums, p0, p1, W, (sumLen+1)/2, func(q0, q1 int, s *[tileN]int32) {
		q := q0
		if useSIMD && W == tileN {
			v := (min(q1, K/2) - q0) &^ 1 // whole pairs, 2 at a time
			if v > 0 {
				idx := rowOffsets(K)
				packInt8x16(&panel[(q0-p0)*tileN], &s[0], &rows[2*q0], &idx[0], K, v)
				q += v
			}
		}
		for j := 0; j < W; j++ {
			r := rows[j*K : (j+1)*K]
			for p := q; p < q1; p++ {
				x := r[2*p]
				var y int8
				if 2*p+1 < K {
					y = r[2*p+1]
				}
				s[j] += int32(x) + int32(y)
				panel[(p-p0)*tileN+j] = pair(x, y)
			}
		}
	})
}

// packInt4 is packInt8 for packed int4 rows (K even: each byte is a pair).
func packInt4(panel, sums []int32, raw []byte, K, p0, p1, W, sumLen int) {
	P := K / 2
	packPairs(panel, sums, p0, p1, W, sumLen/2, func(q0, q1 int, s *[tileN]int32) {
		if useSIMD && W == tileN && (q1-q0)%4 == 0 {
			idx := rowOffsets(P)
			packInt4x16(&panel[(q0-p0)*tileN], &s[0], &raw[q0], &idx[0], P, q1-q0)
			return
		}
		for j := 0; j < W; j++ {
			for p, v := range raw[j*P+q0 : j*P+q1] {
				x, y := int8(v<<4)>>4, int8(v)>>4
				s[j] += int32(x) + int32(y)
				panel[(q0-p0+p)*tileN+j] = pair(x, y)
			}
		}
	})
}

// rowOffsets are the offsets of 8 rows ld apart (the gathers' index).
func rowOffsets(ld int) [8]int32 {
	var o [8]int32
	for i := range o {
		o[i] = int32(i * ld)
	}
	return o
}

// packQ4 writes the int8-quad panel of W packed int4 rows of K (a multiple
// of 32) for q4Tile6 (panel[q·16+j] = the 4 elements 4q..4q+3 of row j as
// bytes, zero past W) and the sums of each block of 32 in sums[b·16+j].
func packQ4(panel, sums []int32, raw []byte, K, W int) {
	P, nb := K/2, K/32
	panel = panel[:K/4*tileN]
	if useSIMD && W == tileN {
		idx := rowOffsets(P)
		packQ4x16(&panel[0], &sums[0], &raw[0], &idx[0], P, nb)
		return
	}
	clear(panel)
	clear(sums)
	for j := 0; j < W; j++ {
		r := raw[j*P : (j+1)*P]
		for q := 0; q < K/4; q++ {
			var d uint32
			for i, v := range r[2*q : 2*q+2] {
				x, y := int8(v<<4)>>4, int8(v)>>4
				sums[q/8*tileN+j] += int32(x) + int32(y)
				d |= uint32(uint8(x))<<(16*i) | uint32(uint8(y))<<(16*i+8)
			}
			panel[q*tileN+j] = int32(d)
		}
	}
}
