package pipeline

// Status is how a job ended: StatusOK, StatusFailed or StatusSkipped.
type Status string

const (
	// StatusOK: the job ran (or, with --check, matched its lock).
	StatusOK Status = "ok"
	// StatusFailed: the job failed, or differs from its lock (--check).
	StatusFailed Status = "failed"
	// StatusSkipped: up to date with its lock, or not run after an
	// earlier failure.
	StatusSkipped Status = "skipped"
)

// JobReport is one job's entry in `qpipe run --json`. Its JSON form is
// stable: fields are only ever added.
type JobReport struct {
	Name   string `json:"name"`
	File   string `json:"file"`
	Status Status `json:"status"`
	// Reason says why a job was skipped: up to date with its lock file,
	// or not run after an earlier failure.
	Reason string `json:"reason,omitempty"`
	Error  string `json:"error"`
	// Lock is the job's lock file (JOB.lock next to JOB.yaml).
	Lock string `json:"lock_file,omitempty"`
	// Check lists, for `qpipe run --check`, every file compared with the
	// lock.
	Check       []CheckResult   `json:"check,omitempty"`
	InputSHA256 string          `json:"input_sha256,omitempty"`
	InputBytes  int64           `json:"input_bytes,omitempty"`
	Seconds     float64         `json:"seconds"`
	Outputs     []*OutputReport `json:"outputs"`
	// Warnings are the job file's lines that do nothing on the model
	// (State.Warnings) and its deprecated names.
	Warnings []string `json:"warnings,omitempty"`
}

// OutputReport describes one written model.
type OutputReport struct {
	Recipe  string         `json:"recipe"`
	Path    string         `json:"path"`
	SHA256  string         `json:"sha256,omitempty"`
	Bytes   int64          `json:"bytes"`
	Layout  string         `json:"layout"`
	Tensors []TensorMetric `json:"tensors,omitempty"`
	// Sizes are the weights' bytes by role and scheme (Plan.SizesByRole);
	// the rest of the file is the graph and the constants no scheme reads.
	Sizes []SizeShare `json:"sizes,omitempty"`
	// Budget is set when a budget chose the schemes.
	Budget *BudgetReport `json:"budget,omitempty"`
	// Accuracy is what verify's accuracy gate measured on this output
	// before it was written (nil without a gate).
	Accuracy *Accuracy `json:"accuracy,omitempty"`
}

// Accuracy is an accuracy gate: the model's outputs compared with the
// float model's on the same generated inputs. In a plan only the settings
// and the bounds are set; in a report every check has its value.
type Accuracy struct {
	Samples int   `json:"samples"`
	Seq     int   `json:"seq,omitempty"` // tokens per sequence; 0: no token input
	Seed    int64 `json:"seed"`
	// Text, when set, is the text file whose windows are the samples.
	Text   string          `json:"text,omitempty"`
	Checks []AccuracyCheck `json:"checks"`
}

// AccuracyCheck is one bound on one output.
type AccuracyCheck struct {
	Signature string `json:"signature"`
	Output    string `json:"output"`
	// Metric is mean_kl (the mean over positions of
	// KL(softmax(float) ‖ softmax(quantized)), in nats; bound max_kl),
	// top1 (the fraction of positions whose top token agrees; bound
	// min_top1) or rel_l2 (‖quantized − float‖₂ / ‖float‖₂; bound
	// max_rel_l2).
	Metric string  `json:"metric"`
	Bound  float64 `json:"bound"`
	// Value is the measured value (nil in a plan); a value that is not
	// finite is reported as ±999 (JSON has no infinities).
	Value *float64 `json:"value,omitempty"`
	Pass  *bool    `json:"pass,omitempty"`
}

// TensorMetric is the quantization error of one written tensor, measured
// against the float weights it came from.
type TensorMetric struct {
	Tensor string  `json:"tensor"`
	Scheme string  `json:"scheme"`
	Role   string  `json:"role,omitempty"`
	Layer  *int    `json:"layer,omitempty"`
	SQNR   float64 `json:"sqnr_db"`
	MaxAbs float64 `json:"max_abs_err"`
	RelL2  float64 `json:"rel_l2"`
	// SensitivityKL is the output KL divergence measured with this weight
	// alone quantized with its scheme (set when a budget measured it).
	SensitivityKL *float64 `json:"sensitivity_kl,omitempty"`
	// Scales is the int4 scale method when it is not min-max ("search",
	// "calibrated"); SQNRMinMax is then what min-max scales would have
	// given, so the gain is SQNR − SQNRMinMax.
	Scales     string   `json:"scales,omitempty"`
	SQNRMinMax *float64 `json:"sqnr_minmax_db,omitempty"`
	// OutputErrorRatio (calibrated only) is the expected squared output
	// error of the chosen scales over min-max's, under the calibration
	// statistics (below 1 is better).
	OutputErrorRatio *float64 `json:"output_error_ratio,omitempty"`
}

// SizeShare is what the weights of one role stored with one scheme weigh,
// before and after quantization.
type SizeShare struct {
	Role     string `json:"role"`
	Scheme   string `json:"scheme"`
	Tensors  int    `json:"tensors"`
	BytesIn  int64  `json:"bytes_in"`
	BytesOut int64  `json:"bytes_out"`
}

// BudgetReport says what a budget asked for, what its mix gives, and the
// same for the uniform presets, all measured on the same samples; then
// HeldOut, the same on other samples, decides what is written.
//
// Metric is the error measured: "kl" (mean KL divergence of the logits,
// nats) or "rel_l2" (relative L2 error of the compared outputs). The
// fields named KL hold the value of that metric.
type BudgetReport struct {
	// SizeBytes, MaxKL or MaxRelL2 is the budget.
	SizeBytes int64   `json:"size_bytes,omitempty"`
	MaxKL     float64 `json:"max_kl,omitempty"`
	MaxRelL2  float64 `json:"max_rel_l2,omitempty"`
	Metric    string  `json:"metric"`
	// Path is how the sensitivities were found: "measured" (each weight
	// quantized alone and the model run), "proxy" (each weight's
	// expected output error from the calibration statistics, scaled to
	// the metric per role group by a model run each) or "proxy per
	// weight" (scaled per weight, a model run each).
	Path string `json:"path"`
	// Seed is the seed of the samples the mix was chosen on.
	Seed int64 `json:"seed"`
	// MeasuredOn says which samples MeasuredKL is from: "choice" (those
	// the mix was chosen on) or "held-out" (the proxy path runs the
	// written output only there).
	MeasuredOn string `json:"measured_on"`
	// PredictedBytes is the output's size (computed exactly from its
	// layout); PredictedKL the sum of its weights' sensitivities;
	// MeasuredKL the mix's KL measured through the interpreter.
	PredictedBytes int64   `json:"predicted_bytes"`
	PredictedKL    float64 `json:"predicted_kl"`
	MeasuredKL     float64 `json:"measured_kl"`
	// Method is how the chosen mix was found; Mixes lists every mix that
	// was measured (the allocation under each error model, the uniform
	// presets within the budget) with its size and measured KL.
	Method string        `json:"method"`
	Mixes  []PresetPoint `json:"mixes,omitempty"`
	// Presets are the uniform schemes among the candidates: their size and
	// measured KL.
	Presets []PresetPoint `json:"presets,omitempty"`
	// What the sensitivity pass ran: the signature and output compared,
	// samples and tokens per sample, probes (models evaluated) of which
	// cached (read from the cache), estimated (options predicted on the
	// proxy path instead of measured), and its wall time.
	Signature string  `json:"signature"`
	Output    string  `json:"output"`
	Samples   int     `json:"samples"`
	Seq       int     `json:"seq"`
	Probes    int     `json:"probes"`
	Cached    int     `json:"cached"`
	Estimated int     `json:"estimated"`
	Seconds   float64 `json:"seconds"`
	// HeldOut is the acceptance on samples the mix was not chosen on.
	HeldOut *BudgetHeldOut `json:"held_out,omitempty"`
}

// BudgetHeldOut is a budget's acceptance test: the chosen mix and every
// uniform preset it competes with (under a size: those of equal or
// smaller size; under an error bound: all) measured on held-out samples.
// The mix is written only if it beats them all there; otherwise the best
// of them is.
type BudgetHeldOut struct {
	Seed    int64 `json:"seed"`
	Samples int   `json:"samples"`
	// Written is "mix" or the recipe of the uniform preset written; Why
	// says why, with the numbers.
	Written string `json:"written"`
	Why     string `json:"why"`
	// Mix is the chosen mix on the held-out samples (KL: the metric
	// there), ChoiceKL its value on the samples it was chosen on
	// (predicted on the proxy path).
	Mix      PresetPoint   `json:"mix"`
	ChoiceKL float64       `json:"choice_kl"`
	Presets  []PresetPoint `json:"presets,omitempty"`
}

// WeightBudget is, in a plan, what a budget weighed for one weight: every
// option with its size and KL, and why it got its scheme.
type WeightBudget struct {
	Options []BudgetOption `json:"options"`
	Why     string         `json:"why"`
}

// BudgetOption is one scheme a budget could give a weight.
type BudgetOption struct {
	Scheme string `json:"scheme"`
	// Scales is the int4 scale method when it is not min-max ("search",
	// "calibrated"), as in the weight's plan: one scheme with two scale
	// methods is two options of the same size.
	Scales string  `json:"scales,omitempty"`
	Bytes  int64   `json:"bytes"`
	KL     float64 `json:"kl"`
	// Predicted is the KL the chosen error model gave it; RelL2 the
	// weight's error with this scheme.
	Predicted float64 `json:"predicted_kl"`
	RelL2     float64 `json:"rel_l2"`
	// Estimated is set when KL was predicted (the proxy path: the
	// weight's expected output error scaled by its role group's gain),
	// not measured with the weight alone quantized.
	Estimated bool `json:"estimated,omitempty"`
	Chosen    bool `json:"chosen,omitempty"`
}

// PresetPoint is a uniform preset's size and measured KL divergence on the
// same model and samples.
type PresetPoint struct {
	Recipe string  `json:"recipe"`
	Bytes  int64   `json:"bytes"`
	KL     float64 `json:"kl"`
}

// CheckResult is one file `qpipe run --check` compared with the lock.
type CheckResult struct {
	// What is "job", "input", "output" (the file on disk) or "rebuilt"
	// (the output rebuilt into a temporary folder).
	What   string `json:"what"`
	Path   string `json:"path"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}
