//go:build race

package quant_test

// The race detector slows the element loops about twentyfold; the exhaustive
// parts of the tests stay, the random sample sizes shrink.
const raceEnabled = true
