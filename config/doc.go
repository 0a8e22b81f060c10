// Package config reads qpipe job files and the recipe catalog.
//
// A job file is YAML, version 1: a name and an ordered list of stages
// (load, annotate, quantize, verify, serialize), each a one-key mapping.
// ParseJob and LoadJob decode it strictly: every unknown key, wrong type,
// bad value, duplicate key and misplaced stage is reported with its
// file:line:column, and all problems of a file come back together as
// Diagnostics instead of stopping at the first.
//
// Recipes say which Scheme each weight gets, by role (default, embedding,
// attention, feedforward) and transformer block. The presets and the
// canonical schemes come from recipes.yaml at the repository root, embedded
// into the binary (qpipe.RecipesYAML) and parsed just as strictly when the
// package is initialised.
//
// The package knows nothing about tensors or model files: it checks what can
// be checked from the job file alone (recipes, block sizes, stage order,
// output paths, regular expressions). Checks against the model's shapes
// belong to the stages.
package config
