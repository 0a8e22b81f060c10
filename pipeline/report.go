package pipeline

// JobReport is one job's entry in `qpipe run --json`.
type JobReport struct {
	Name        string          `json:"name"`
	File        string          `json:"file"`
	Status      string          `json:"status"` // "ok" or "failed"
	Error       string          `json:"error"`
	InputSHA256 string          `json:"input_sha256,omitempty"`
	Seconds     float64         `json:"seconds"`
	Outputs     []*OutputReport `json:"outputs"`
}

// OutputReport describes one written model.
type OutputReport struct {
	Recipe  string         `json:"recipe"`
	Path    string         `json:"path"`
	SHA256  string         `json:"sha256,omitempty"`
	Bytes   int64          `json:"bytes"`
	Layout  string         `json:"layout"`
	Tensors []TensorMetric `json:"tensors,omitempty"`
}

// TensorMetric is the quantization error of one written tensor, measured
// against the float weights it came from.
type TensorMetric struct {
	Tensor string  `json:"tensor"`
	Scheme string  `json:"scheme"`
	SQNR   float64 `json:"sqnr_db"`
	MaxAbs float64 `json:"max_abs_err"`
	RelL2  float64 `json:"rel_l2"`
}
