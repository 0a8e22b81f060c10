// Package pipeline runs qpipe jobs: a list of stages applied in order to a
// shared State, with a common prefix (load, annotate) run once and one branch
// (quantize, verify, serialize) per recipe, each on its own fork of the state.
//
// The package owns the Stage interface, the runner, the per-weight plan that
// `qpipe plan` prints and the report that `qpipe run --json` prints. It knows
// nothing about any one file format or quantization scheme: the stages
// package does.
package pipeline
