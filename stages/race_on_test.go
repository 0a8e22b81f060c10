//go:build race

package stages

// raceEnabled: the race detector slows the interpreter tenfold or more.
const raceEnabled = true
