package evaluate

import (
	"slices"
	"strings"

	"github.com/qpipe/qpipe/internal/interp"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// The seed policy: qpipe eval's default and the accuracy gate draw their
// generated inputs from small seeds, calibration from seeds far above
// them, and budgets (stages) from seeds far from both, so that what a
// calibrated model or a budget's mix is judged on is never what it was
// made from.
const (
	// MeasureSeed seeds the generated inputs of qpipe eval (its --seed
	// default) and the accuracy gate.
	MeasureSeed = 1
	// CalibrationSeed is the first seed of the generated calibration
	// inputs (sample k uses CalibrationSeed with index k).
	CalibrationSeed = 1 << 20
)

// LogitsOutput names a logits output: a float output whose last dimension
// is the vocabulary of one of the model's token inputs (an embedding
// table's row count, modelinput.TokenInputs). It is the one definition of
// "the logits" that qpipe eval (KL, top-k), the accuracy gate (max_kl,
// min_top1) and the budget (its KL) use.
type LogitsOutput struct {
	Signature string // key
	Subgraph  int
	Output    string // name
	Vocab     int
}

// LogitsOutputs lists the logits outputs of the signatures of the model
// meta describes, by signature key, then in the signature's output order:
// a measure of one logits output takes the first.
func LogitsOutputs(meta *fb.ModelT, sigs []interp.Signature) []LogitsOutput {
	vocabs := modelVocabs(meta)
	sorted := slices.Clone(sigs)
	slices.SortStableFunc(sorted, func(a, b interp.Signature) int { return strings.Compare(a.Key, b.Key) })
	var out []LogitsOutput
	for _, s := range sorted {
		for _, o := range s.Outputs {
			if v := logitsVocab(o.Type, o.Shape, vocabs); v > 0 {
				out = append(out, LogitsOutput{Signature: s.Key, Subgraph: s.Subgraph, Output: o.Name, Vocab: v})
			}
		}
	}
	return out
}
