package evaluate

// The seed policy: every measurement of a quantized model (qpipe eval's
// default, the accuracy gate, the budget's sensitivities) draws its
// generated inputs from small seeds, and calibration from seeds far
// above them, so that what a calibrated model is measured on is never
// what it was calibrated on.
const (
	// MeasureSeed seeds the generated inputs of qpipe eval (its --seed
	// default), the accuracy gate and the budget's measurements.
	MeasureSeed = 1
	// CalibrationSeed is the first seed of the generated calibration
	// inputs (sample k uses CalibrationSeed with index k).
	CalibrationSeed = 1 << 20
)
