// Package qpipe is the root of the qpipe module. It holds the files that are
// compiled into every qpipe binary; the code lives in the sub-packages
// (config, pipeline, stages, cmd/qpipe).
package qpipe

import _ "embed" // for go:embed

// RecipesYAML is recipes.yaml from the repository root: the quantization
// schemes and the named recipe presets (with their output-name suffixes and
// descriptions) that job files and `qpipe quantize --recipe` refer to.
// Package config parses it strictly when it is initialised; edit the file,
// not this variable.
//
//go:embed recipes.yaml
var RecipesYAML []byte
