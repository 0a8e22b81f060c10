//go:build race

package main

// raceEnabled: the race detector slows the interpreter tenfold or more.
const raceEnabled = true
