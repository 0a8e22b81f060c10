package tflite

import (
	"math"
	"path/filepath"
	"reflect"
	"testing"
)

const modelsDir = "../../testdata/models"

// testModels lists every model in testdata/models.
func testModels(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(modelsDir, "*.tflite"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no test models in %s (%v)", modelsDir, err)
	}
	return files
}

func modelName(path string) string {
	b := filepath.Base(path)
	return b[:len(b)-len(filepath.Ext(b))]
}

// deepEqual is reflect.DeepEqual except that floats compare by bits, so
// that NaN scales and signed zeros are compared exactly.
func deepEqual(a, b any) bool {
	return valueEqual(reflect.ValueOf(a), reflect.ValueOf(b))
}

func valueEqual(a, b reflect.Value) bool {
	if a.IsValid() != b.IsValid() {
		return false
	}
	if !a.IsValid() {
		return true
	}
	if a.Type() != b.Type() {
		return false
	}
	switch a.Kind() {
	case reflect.Float32:
		return math.Float32bits(float32(a.Float())) == math.Float32bits(float32(b.Float()))
	case reflect.Float64:
		return math.Float64bits(a.Float()) == math.Float64bits(b.Float())
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return valueEqual(a.Elem(), b.Elem())
	case reflect.Slice:
		if a.IsNil() != b.IsNil() || a.Len() != b.Len() {
			return false
		}
		for i := 0; i < a.Len(); i++ {
			if !valueEqual(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Struct:
		for i := 0; i < a.NumField(); i++ {
			if !valueEqual(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		panic("deepEqual: maps not supported")
	default:
		return a.Interface() == b.Interface()
	}
}
