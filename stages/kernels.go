package stages

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/qpipe/qpipe/internal/quant"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// chunkElems is how many float32 weights are read, quantized and written
// at a time (1 MiB of input): memory per tensor in flight stays bounded
// however large the tensor, and a chunk stays in the core's cache from the
// read that copies it in to the write that copies its output out. With
// 16 MiB chunks every step missed the cache: on the 1 GB decoder (fp16,
// interleaved runs on a loaded machine) 1 MiB chunks took 0.6 s of system
// time instead of 1.6, peak RSS 19 MiB instead of 117 and 3,000 minor
// faults instead of 28,000; 256 KiB chunks measured like 1 MiB, and
// gathering the outputs of 1 MiB chunks into 16 MiB writes like 16 MiB
// chunks.
const chunkElems = 1 << 18

// params are a buffer job's quantization parameters and running totals.
type params struct {
	scales      []float32 // int8: one per channel
	zeroPoints  []int64   // int8: one per channel
	blockScales []uint16  // int4: float16 bits, [rows, cols/block]
	clamped     int       // int4 scales raised to 2^-14
	clampTiny   bool      // the int4 clamp is on
	// late: the parameters are computed while the data is written (see
	// computeParams); the tables hold them only after serialize.
	late   bool
	outLen int64
	// reference makes the job write the dequantized weights as float32
	// instead of the quantized bytes (Quantize.Reference).
	reference bool
	// errs accumulates the quantization error as the chunks are written
	// (metrics on); errs.N is 0 when nothing was measured.
	errs quant.ErrorSums
	// outErrs accumulates, when its Stats are set (a budget's
	// sensitivity pass) and metrics are on, the expected output error of
	// the weight under its input's statistics.
	outErrs quant.OutputErrors
	// stats are the input activations' statistics for calibrated int4
	// scales (nil: the search is data-free).
	stats *quant.ChannelStats
	// gptq is where a gptq job's input covariance comes from (nil: none,
	// or another method).
	gptq *gptqSource
	// fe is the gptq factor the job holds while it writes (holdFactor).
	fe *factorEntry
	// gptqChunks counts the chunks gptq quantized, gptqKept those that
	// kept compensation after the held-out check.
	gptqChunks, gptqKept int
	// search sums the searching kernel's per-row errors: min-max's and the
	// chosen scales' (squared weight error, and expected output error when
	// calibrated), in row order.
	search quant.RowErrors
	// planSQNR is set by a dry run of a searched job (measureScales).
	planSQNR *planSQNR
}

// rows views the tensor as rows of rowElems elements: the unit in which it
// is read, quantized and written.
func (j *bufferJob) rows() (rows, rowElems int) {
	n := 1
	for _, d := range j.shape {
		n *= d
	}
	switch {
	case j.req.sc.kind == kindFP16:
		return n, 1
	case j.req.sc.kind == kindInt4Block:
		cols := j.shape[len(j.shape)-1]
		return n / cols, cols
	case j.req.sc.perTensor, j.req.sc.kind == kindWOInt4:
		// One unit: int4 packs two elements per byte across rows.
		return 1, n
	case j.req.axis == 0 && n > 0:
		return j.shape[0], n / j.shape[0]
	default: // per-channel along another axis: the tensor is one unit
		return 1, n
	}
}

// paramShape is the shape and axis the int8 parameters are computed over:
// the tensor's own, or [1, n] for one scale over the whole tensor.
func (j *bufferJob) paramShape() ([]int, int) {
	if j.req.sc.perTensor {
		return []int{1, j.numel()}, 0
	}
	return j.shape, j.req.axis
}

// chunkRows is how many rows one chunk holds.
func chunkRows(rowElems int) int { return max(1, chunkElems/max(1, rowElems)) }

// chunkShape is the shape of rows [r0, r1) as a tensor of its own.
func (j *bufferJob) chunkShape(r0, r1 int) []int {
	if _, rowElems := j.rows(); rowElems == j.numel() {
		return j.shape
	}
	s := append([]int(nil), j.shape...)
	s[0] = r1 - r0
	return s
}

func (j *bufferJob) numel() int {
	n := 1
	for _, d := range j.shape {
		n *= d
	}
	return n
}

// computeParams allocates the job's parameters. Only a per-channel int8
// weight whose channels are not its rows (depthwise convolutions, batch
// matmul operands: small tensors) is read here. Every other scheme computes
// its parameters chunk by chunk while serialize writes it, with the fused
// kernels, filling the tables in place (late): each weight is read once.
func (j *bufferJob) computeParams(clampTiny bool) error {
	j.clampTiny = clampTiny
	n := j.numel()
	if need := int64(n) * 4; j.src.Len() < need {
		return fmt.Errorf("buffer holds %d bytes, shape %v needs %d", j.src.Len(), j.shape, need)
	}
	_, rowElems := j.rows()
	switch j.req.sc.kind {
	case kindDynInt8, kindWOInt8, kindWOInt4:
		shape, axis := j.paramShape()
		channels := shape[axis]
		j.scales = make([]float32, channels)
		j.zeroPoints = make([]int64, channels)
		j.late = rowElems != n
	case kindInt4Block:
		j.blockScales = make([]uint16, n/j.req.sc.block)
		j.late = true
	}
	if j.late || j.req.sc.kind == kindFP16 {
		return nil
	}
	src, err := newFloatSource(j.src)
	if err != nil {
		return err
	}
	shape, axis := j.paramShape()
	params := quant.ChannelParamsInt8
	if j.req.sc.kind == kindWOInt4 {
		params = quant.ChannelParamsInt4
	}
	if err := params(j.scales, j.zeroPoints, src.floats(0, n), shape, axis, j.req.sc.symmetric); err != nil {
		return describe(err, 0)
	}
	return nil
}

// describe turns a kernel's value error into one that says what to do.
func describe(err error, offset int) error {
	var ve *quant.ValueError
	if e, ok := err.(*quant.ValueError); ok {
		ve = e
	}
	if ve == nil {
		return err
	}
	return fmt.Errorf("%s weights: %d in the chunk of rows that holds the first, at element %d (%v); fix the float model, or keep this tensor float in the recipe", ve.Kind, ve.Count, offset+ve.First, ve.Value)
}

// content is the job's output bytes, computed a chunk at a time when the
// writer asks for them.
func (j *bufferJob) content(metrics bool) tflite.Content {
	return tflite.ContentFunc{N: j.outLen, Write: func(w io.Writer) error {
		if err := j.write(w, metrics); err != nil {
			return fmt.Errorf("%s: %w", j.label, err)
		}
		return nil
	}}
}

// scaleContent is the int4 scale tensor's data, float16 little-endian. For
// a late job the scales exist only once the weight was written, so the
// writer must produce it after every weight (tflite.Late).
func (j *bufferJob) scaleContent() tflite.Content {
	c := tflite.ContentFunc{N: j.scaleLen(), Write: func(w io.Writer) error {
		_, err := w.Write(quant.Uint16Bytes(j.blockScales))
		return err
	}}
	if j.late {
		return tflite.Late{Content: c}
	}
	return c
}

// readPieces reads a weight quantized with kind in pieces of size bytes.
// The scalar int4 kernel keeps few misses in flight: it runs faster on a
// copy in cache (ReadPiecesBuffered). The vector kernels are faster reading
// the mapping in place (1 GB decoder, block 32: 0.18 s wall, 0.22 user
// against 0.21 s, 0.26 user copying first).
func readPieces(k kind, c tflite.Content, size int) (*tflite.Pieces, error) {
	if k == kindInt4Block && !quant.VectorKernels() {
		return tflite.ReadPiecesBuffered(c, size)
	}
	return tflite.ReadPieces(c, size)
}

func (j *bufferJob) write(w io.Writer, metrics bool) error {
	metrics = metrics || j.reference
	rows, rowElems := j.rows()
	step := chunkRows(rowElems)
	n := min(step, rows) * rowElems
	// The weight is read a chunk at a time by positioned reads into a
	// reused buffer (tflite.Pieces). A tensor without elements reads
	// nothing.
	next := func() ([]byte, error) { return nil, nil }
	if n > 0 {
		in, err := readPieces(j.req.sc.kind, j.src, 4*n)
		if err != nil {
			return err
		}
		defer in.Close()
		next = in.Next
	}
	j.search = quant.RowErrors{}
	j.gptqChunks, j.gptqKept = 0, 0
	if j.gptq != nil {
		defer j.gptq.cache.written(j) // after the factor's release below
	}
	if j.late { // every chunk of a gptq weight uses one factor
		release, err := j.holdFactor(0)
		if err != nil {
			return err
		}
		defer release()
	}
	if j.gptq != nil {
		defer func(start time.Time) {
			j.gptq.log.Info().Str("weight", j.label).Int("rows", rows).Int("columns", rowElems).
				Int("chunks", j.gptqChunks).Int("compensated_chunks", j.gptqKept).
				Float64("seconds", time.Since(start).Seconds()).Msg("gptq: wrote a weight")
		}(time.Now())
	}
	var back []float32
	if metrics {
		bp := getChunk(4 * n)
		defer chunkPool.Put(bp)
		back = quant.Float32s((*bp)[:4*n]) // a view: the pool's buffers are aligned
	}
	op := getChunk(max(j.chunkBytes(n), j.refBytes(n)))
	defer chunkPool.Put(op)
	out := *op
	var rowErrs []quant.RowErrors // the search's errors, for the report only
	if j.req.sc.searched() && metrics {
		rowErrs = make([]quant.RowErrors, min(step, rows))
	}
	for r0 := 0; r0 < rows; r0 += step {
		r1 := min(rows, r0+step)
		p, err := next()
		if err != nil {
			return err
		}
		x := quant.Float32s(p[:4*(r1-r0)*rowElems]) // the buffer may hold more than the shape
		b := out[:j.chunkBytes(len(x))]
		switch j.req.sc.kind {
		case kindDynInt8, kindWOInt8:
			q8 := quant.BytesInt8(b)
			if !j.late { // one unit, channels along another axis (or one scale): parameters known
				shape, axis := j.paramShape()
				quant.QuantizeInt8(q8, x, shape, axis, j.scales, j.zeroPoints, j.req.sc.symmetric)
				if j.gptq != nil {
					if err := j.gptqWholeInt8(q8, x); err != nil {
						return err
					}
				}
				if metrics {
					quant.DequantizeInt8(back[:len(x)], q8, shape, axis, j.scales, j.zeroPoints)
				}
				break
			}
			sc, zp := j.scales[r0:r1], j.zeroPoints[r0:r1]
			if err := quant.QuantizeRowsInt8(q8, sc, zp, x, rowElems, j.req.sc.symmetric); err != nil {
				return describe(err, r0*rowElems)
			}
			if j.req.sc.gptq() {
				if err := j.gptqInt8(q8, sc, zp, x, rowElems); err != nil {
					return err
				}
			}
			if metrics {
				quant.DequantizeInt8(back[:len(x)], q8, j.chunkShape(r0, r1), 0, sc, zp)
			}
		case kindWOInt4:
			shape, axis := j.paramShape()
			q := make([]int8, len(x))
			quant.QuantizeChannelsInt4(q, x, shape, axis, j.scales, j.zeroPoints)
			quant.PackInt4(b, q)
			if metrics {
				quant.DequantizeInt8(back[:len(x)], q, shape, axis, j.scales, j.zeroPoints)
			}
		case kindInt4Block:
			per := rowElems / j.req.sc.block
			sc := j.blockScales[r0*per : r1*per]
			c, err := j.quantizeInt4(b, sc, x, rowElems, rowErrs)
			if err != nil {
				return describe(err, r0*rowElems)
			}
			j.clamped += c
			if i := firstAbnormal(sc); i >= 0 {
				return fmt.Errorf("block scale %d is %#04x, not a positive normal float16: the CPU runtime would refuse the model (this happens with --strict-reference on all-zero or tiny blocks)", r0*per+i, sc[i])
			}
			if metrics {
				quant.DequantizeInt4(back[:len(x)], b, rowElems, j.req.sc.block, sc)
			}
		case kindFP16:
			h16 := quant.Uint16View(b)
			view := h16 != nil
			if !view {
				h16 = make([]uint16, len(x))
			}
			if err := quant.ToFloat16(h16, x); err != nil {
				return describe(err, r0)
			}
			if !view {
				quant.EncodeUint16LE(b, h16)
			}
			if metrics {
				quant.FromFloat16(back[:len(x)], h16)
			}
		}
		if metrics {
			j.errs.Add(x, back[:len(x)])
			if j.outErrs.Stats != nil {
				j.outErrs.Add(x, back[:len(x)])
			}
		}
		if j.reference {
			b = quant.Float32Bytes(back[:len(x)])
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// quantizeInt4 quantizes whole rows of an int4 weight with the job's scale
// method, adding the search's row errors (in row order) to j.search when
// rowErrs is not nil (measuring them costs passes; the bytes are the same).
func (j *bufferJob) quantizeInt4(dst []byte, scales []uint16, x []float32, cols int, rowErrs []quant.RowErrors) (int, error) {
	if j.req.sc.gptq() {
		return j.quantizeGPTQ4(dst, scales, x, cols)
	}
	if !j.req.sc.searched() {
		return quant.QuantizeBlocksInt4(dst, scales, x, cols, j.req.sc.block, j.clampTiny)
	}
	if rowErrs == nil {
		return quant.SearchBlocksInt4(dst, scales, x, cols, j.req.sc.block, j.clampTiny, j.stats, nil)
	}
	rowErrs = rowErrs[:len(x)/cols]
	c, err := quant.SearchBlocksInt4(dst, scales, x, cols, j.req.sc.block, j.clampTiny, j.stats, rowErrs)
	for _, e := range rowErrs {
		j.search.MinMax += e.MinMax
		j.search.Chosen += e.Chosen
		j.search.OutMinMax += e.OutMinMax
		j.search.OutChosen += e.OutChosen
	}
	return c, err
}

// outputLen is the size of the quantized buffer.
func (j *bufferJob) outputLen() int64 {
	if j.reference {
		return int64(j.refBytes(j.numel()))
	}
	return int64(j.chunkBytes(j.numel()))
}

// refBytes is the size of n dequantized float32 values in reference mode.
func (j *bufferJob) refBytes(n int) int {
	if j.reference {
		return 4 * n
	}
	return 0
}

// scaleLen is the size of the int4 scale buffer (0 for other schemes).
func (j *bufferJob) scaleLen() int64 {
	if j.req.sc.kind != kindInt4Block {
		return 0
	}
	return 2 * int64(j.numel()/j.req.sc.block)
}

// chunkPool recycles the per-chunk buffers of write: a model has hundreds
// of tensors, and fresh buffers for each would keep the garbage
// collector (and its preemption of the kernels' loops) busy.
var chunkPool sync.Pool

// getChunk returns a pooled buffer of at least n bytes, 8-byte aligned (it
// is also viewed as float32s).
func getChunk(n int) *[]byte {
	if bp, ok := chunkPool.Get().(*[]byte); ok && cap(*bp) >= n {
		*bp = (*bp)[:n]
		return bp
	}
	b := make([]byte, n, max(n, 4*chunkElems))
	return &b
}

// chunkBytes is the output size of n input elements.
func (j *bufferJob) chunkBytes(n int) int {
	switch j.req.sc.kind {
	case kindInt4Block, kindWOInt4:
		return (n + 1) / 2
	case kindFP16:
		return 2 * n
	}
	return n
}

// firstAbnormal is the index of the first float16 that is not a positive
// normal number (sign 0, exponent 1..30), or -1.
func firstAbnormal(h []uint16) int {
	for i, x := range h {
		if e := x >> 10 & 0x1f; x>>15 != 0 || e == 0 || e == 0x1f {
			return i
		}
	}
	return -1
}

// setTensor gives t the job's type and quantization parameters.
func (j *bufferJob) setTensor(t *fb.TensorT) {
	switch j.req.sc.kind {
	case kindDynInt8, kindWOInt8:
		t.Type = fb.TensorTypeINT8
		t.Quantization = &fb.QuantizationParametersT{
			Scale:              j.scales,
			ZeroPoint:          j.zeroPoints,
			QuantizedDimension: int32(j.req.axis),
		}
	case kindWOInt4:
		t.Type = fb.TensorTypeINT4
		t.Quantization = &fb.QuantizationParametersT{
			Scale:              j.scales,
			ZeroPoint:          j.zeroPoints,
			QuantizedDimension: int32(j.req.axis),
		}
	case kindFP16:
		t.Type = fb.TensorTypeFLOAT16
	case kindInt4Block:
		t.Type = fb.TensorTypeINT4
		t.Quantization = &fb.QuantizationParametersT{
			Details: &fb.QuantizationDetailsT{
				Type:  fb.QuantizationDetailsBlockwiseQuantization,
				Value: &fb.BlockwiseQuantizationT{Scales: -1, ZeroPoints: -1, BlockSize: int32(j.req.sc.block)},
			},
		}
	}
}

// floatSource reads a float32 tensor's elements at random: straight from
// memory when the input is mapped, else from a copy. Only computeParams
// uses it, for the small tensors whose channels are not their rows; write
// streams.
type floatSource struct{ mem []byte }

func newFloatSource(c tflite.Content) (*floatSource, error) {
	mem, err := tflite.ReadAll(c)
	if err != nil {
		return nil, err
	}
	return &floatSource{mem: mem}, nil
}

// floats returns elements [off, off+n): a view of the input when it is
// 4-byte aligned (always, for files qpipe or the converter wrote), a decoded
// copy otherwise.
func (f *floatSource) floats(off, n int) []float32 {
	return quant.Float32s(f.mem[4*off : 4*(off+n)])
}
