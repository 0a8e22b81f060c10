package config_test

import (
	"fmt"

	"github.com/qpipe/qpipe/config"
)

func ExampleParseJob() {
	job, err := config.ParseJob("jobs/tiny.yaml", []byte(`version: 1
stages:
  - load: {path: models/tiny.tflite}
  - quantize:
      recipe:
        default: dynamic_int8
        feedforward: {all: dynamic_int4_block32, layers: {"0": none}}
  - serialize:
      path: out/{name}_{suffix}.tflite
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(job.Name, job.Load().Path)
	for _, out := range job.Outputs() {
		fmt.Println(out.Path)
		for _, layer := range []int{0, 1} {
			fmt.Printf("feedforward block %d: %v\n", layer, out.Recipe.Resolve(config.RoleFeedforward, layer))
		}
		fmt.Println("attention:", out.Recipe.Resolve(config.RoleAttention, 1))
	}
	// Output:
	// tiny jobs/models/tiny.tflite
	// jobs/out/tiny_custom.tflite
	// feedforward block 0: none
	// feedforward block 1: dynamic_int4_block32
	// attention: dynamic_int8
}

func ExampleParseJob_diagnostics() {
	_, err := config.ParseJob("jobs/bad.yaml", []byte(`version: 1
stages:
  - load: {path: m.tflite}
  - quantize:
      recipe: {default: dynamic_int4_block48, attention: int4}
  - serialize: {path: m.tflite}
`))
	fmt.Println(err)
	// Output:
	// jobs/bad.yaml:5:25: quantize.recipe.default: "dynamic_int4_block48": block size 48: must be a multiple of 32, at least 32 (32, 64, 128, 256, ...)
	// jobs/bad.yaml:5:58: quantize.recipe.attention: unknown scheme "int4"; valid: none, dynamic_int8, weight_only_int8, weight_only_int8_asym, fp16, dynamic_int4_block32, dynamic_int4_block64, dynamic_int4_block128, dynamic_int4_block256 (or dynamic_int4_block<B> for any multiple B of 32, or a scheme mapping)
	// jobs/bad.yaml:6:23: serialize.path: the output "jobs/m.tflite" is the input model (load.path); qpipe never overwrites its input
}

func ExamplePreset() {
	r, err := config.Preset("full_int8_dynamic_recipe")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(r.Name, r.Suffix, r)
	fmt.Println(r.Warning)
	// Output:
	// dynamic_int8 q8 default: dynamic_int8
	// recipe "full_int8_dynamic_recipe" is a deprecated upstream name (upstream name until November 2025); using the preset dynamic_int8 (suffix q8)
}
