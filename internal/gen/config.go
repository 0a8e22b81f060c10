package gen

import (
	"fmt"
	"math"
	"sort"
)

// Config sizes a generated decoder. The zero value is not valid: start from
// a Preset.
type Config struct {
	// Name names the model in errors and in the summary of qpipe gen.
	Name string
	// Vocab is the number of token ids: rows of the embedding table and
	// columns of the logits.
	Vocab int
	// Dim is the width of the residual stream (the model dimension).
	Dim int
	// Layers is the number of transformer blocks.
	Layers int
	// Heads is the number of attention heads; it must divide Dim.
	Heads int
	// FFN is the hidden width of the gated feed-forward network. With
	// NotDivisible the generated width is FFN−32 (see FFNWidth).
	FFN int
	// Seq is the static number of token positions of the signature.
	Seq int
	// Seed selects the weights: the same Config gives the same bytes.
	Seed uint64
	// Activation is "silu" (x·LOGISTIC(x), as LiteRT Torch lowers SiLU) or
	// "gelu" (the GELU op, exact erf form).
	Activation string
	// NotDivisible makes the feed-forward width FFN−32: with FFN a multiple
	// of 256 that is an odd multiple of 32, so the input dimension of every
	// down projection (w2) divides by block 32 only and blocks 64, 128 and
	// 256 must be refused for those weights, while every other weight still
	// takes every block size.
	NotDivisible bool
}

// Activation values accepted in Config.Activation.
const (
	ActSiLU = "silu"
	ActGELU = "gelu"
)

// notDivisibleCut is what NotDivisible takes off the feed-forward width.
const notDivisibleCut = 32

// maxDim bounds every dimension so that shapes fit int32 and a single
// tensor stays addressable; real models are far below it.
const maxDim = 1 << 20

// FFNWidth is the feed-forward width the generator uses: FFN, or FFN−32
// with NotDivisible.
func (c Config) FFNWidth() int {
	if c.NotDivisible {
		return c.FFN - notDivisibleCut
	}
	return c.FFN
}

// HeadDim is Dim / Heads.
func (c Config) HeadDim() int { return c.Dim / c.Heads }

// Validate reports the first thing that makes c unusable, naming the field
// and what to change.
func (c Config) Validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{{"vocab", c.Vocab}, {"dim", c.Dim}, {"layers", c.Layers}, {"heads", c.Heads}, {"ffn", c.FFN}, {"seq", c.Seq}} {
		if f.v < 1 || f.v > maxDim {
			return fmt.Errorf("gen: %s = %d: must be between 1 and %d", f.name, f.v, maxDim)
		}
	}
	if c.Dim%c.Heads != 0 {
		return fmt.Errorf("gen: dim %d is not divisible by heads %d: choose heads that divide dim", c.Dim, c.Heads)
	}
	if c.NotDivisible && c.FFN <= notDivisibleCut {
		return fmt.Errorf("gen: ffn %d: not-divisible takes %d off the feed-forward width, so ffn must exceed %d", c.FFN, notDivisibleCut, notDivisibleCut)
	}
	if c.Activation != ActSiLU && c.Activation != ActGELU {
		return fmt.Errorf("gen: activation %q: must be %q or %q", c.Activation, ActSiLU, ActGELU)
	}
	if int64(c.Vocab)*int64(c.Dim) > math.MaxInt32 || int64(c.FFNWidth())*int64(c.Dim) > math.MaxInt32 {
		return fmt.Errorf("gen: a weight of vocab %d × dim %d or ffn %d × dim %d has more than 2^31−1 elements", c.Vocab, c.Dim, c.FFNWidth(), c.Dim)
	}
	return nil
}

// Params is the number of weight parameters: the embedding table (shared
// with lm_head, counted once), per block 4·dim² attention projections,
// 3·dim·ffn feed-forward weights and 2·dim norm weights, and the final norm.
// The small graph constants (mask, shapes, scalars) are not counted.
func (c Config) Params() int64 {
	d, f := int64(c.Dim), int64(c.FFNWidth())
	perBlock := 4*d*d + 3*d*f + 2*d
	return int64(c.Vocab)*d + int64(c.Layers)*perBlock + d
}

// WeightBytes is the size of the float32 weights: 4·Params.
func (c Config) WeightBytes() int64 { return 4 * c.Params() }

// Presets are the named sizes of qpipe gen. Every dimension a block size
// runs along (dim, ffn) is a multiple of 256, so every int4 block size
// applies to every weight.
var presets = map[string]Config{
	// 1,574,144 parameters, 6.3 MB: the committed testdata/models/tiny_decoder.tflite.
	"tiny": {Name: "tiny", Vocab: 1024, Dim: 256, Layers: 2, Heads: 4, FFN: 512, Seq: 8, Seed: 1, Activation: ActSiLU},
	// 271,075,328 parameters, 1.08 GB.
	"1gb": {Name: "1gb", Vocab: 32000, Dim: 2048, Layers: 4, Heads: 16, FFN: 5632, Seq: 64, Seed: 1, Activation: ActSiLU},
	// 990,455,808 parameters, 3.96 GB (TinyLlama-like widths, 18 blocks).
	"4gb": {Name: "4gb", Vocab: 32000, Dim: 2048, Layers: 18, Heads: 16, FFN: 5632, Seq: 64, Seed: 1, Activation: ActSiLU},
	// 6,708,006,912 parameters, 26.8 GB (Llama-2-7B widths with ffn 11264 = 44·256).
	"7b": {Name: "7b", Vocab: 32000, Dim: 4096, Layers: 32, Heads: 32, FFN: 11264, Seq: 64, Seed: 1, Activation: ActSiLU},
}

// Preset returns the named preset (tiny, 1gb, 4gb, 7b).
func Preset(name string) (Config, bool) {
	c, ok := presets[name]
	return c, ok
}

// PresetNames lists the presets in ascending size.
func PresetNames() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return presets[names[i]].Params() < presets[names[j]].Params() })
	return names
}
