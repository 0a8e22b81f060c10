//go:build race

package conformance

// raceEnabled: the race detector slows quantization with calibration (the
// interpreter) tenfold or more.
const raceEnabled = true
