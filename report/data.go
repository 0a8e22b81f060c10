package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/qpipe/qpipe/pipeline"
)

// run is the JSON `qpipe run --json` prints.
type run struct {
	Jobs []*job
}

// job is one job of the run, with the fields of the JSON that the typed
// report does not know.
type job struct {
	*pipeline.JobReport
	Outputs []*output
	Extra   []field
}

type output struct {
	*pipeline.OutputReport
	// TensorExtra names the tensor fields the typed report does not know,
	// sorted; each tensor's values are in Tensors[i].Extra.
	TensorExtra []string
	Tensors     []tensor
	Extra       []field
}

type tensor struct {
	pipeline.TensorMetric
	Extra map[string]any
}

// field is a key of the JSON and its decoded value (json.Number, string,
// bool, nil, []any or map[string]any).
type field struct {
	Key   string
	Value any
}

// parse decodes a run report. Errors say where the JSON is wrong.
func parse(data []byte) (*run, error) {
	// Decoding the whole report first gives errors their place in it.
	var typed struct {
		Jobs []*pipeline.JobReport `json:"jobs"`
	}
	if err := json.Unmarshal(data, &typed); err != nil {
		return nil, jsonError(data, err)
	}
	var raw struct {
		Jobs []json.RawMessage `json:"jobs"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, jsonError(data, err)
	}
	if raw.Jobs == nil {
		return nil, errors.New(`no "jobs": not the output of qpipe run --json`)
	}
	r := &run{}
	for i, rj := range raw.Jobs {
		j, err := parseJob(rj)
		if err != nil {
			return nil, fmt.Errorf("jobs[%d]: %w", i, err)
		}
		r.Jobs = append(r.Jobs, j)
	}
	return r, nil
}

func parseJob(data []byte) (*job, error) {
	j := &job{JobReport: &pipeline.JobReport{}}
	rest, err := decode(data, j.JobReport, &j.Extra, "outputs")
	if err != nil {
		return nil, err
	}
	var outs []json.RawMessage
	if o, ok := rest["outputs"]; ok {
		if err := json.Unmarshal(o, &outs); err != nil {
			return nil, jsonError(o, err)
		}
	}
	j.JobReport.Outputs = nil
	for i, od := range outs {
		o, err := parseOutput(od)
		if err != nil {
			return nil, fmt.Errorf("outputs[%d]: %w", i, err)
		}
		j.Outputs = append(j.Outputs, o)
	}
	return j, nil
}

func parseOutput(data []byte) (*output, error) {
	o := &output{OutputReport: &pipeline.OutputReport{}}
	rest, err := decode(data, o.OutputReport, &o.Extra, "tensors")
	if err != nil {
		return nil, err
	}
	var ts []json.RawMessage
	if t, ok := rest["tensors"]; ok {
		if err := json.Unmarshal(t, &ts); err != nil {
			return nil, jsonError(t, err)
		}
	}
	keys := map[string]bool{}
	for i, t := range ts {
		var fs []field
		tm := tensor{Extra: map[string]any{}}
		if _, err := decode(t, &tm.TensorMetric, &fs); err != nil {
			return nil, fmt.Errorf("tensors[%d]: %w", i, err)
		}
		for _, f := range fs {
			tm.Extra[f.Key] = f.Value
			keys[f.Key] = true
		}
		o.Tensors = append(o.Tensors, tm)
	}
	for k := range keys {
		o.TensorExtra = append(o.TensorExtra, k)
	}
	sort.Strings(o.TensorExtra)
	return o, nil
}

// decode fills typed (a pointer to a struct) from a JSON object, puts
// what the struct does not carry in extra — members it has no field for,
// at any depth, keyed by their path (accuracy.checks[0].note) — except
// the members named in skip, and returns all the members.
func decode(data []byte, typed any, extra *[]field, skip ...string) (map[string]json.RawMessage, error) {
	if err := json.Unmarshal(data, typed); err != nil {
		return nil, jsonError(data, err)
	}
	var rest map[string]json.RawMessage
	if err := json.Unmarshal(data, &rest); err != nil {
		return nil, jsonError(data, err)
	}
	back, err := json.Marshal(typed)
	if err != nil {
		return nil, err
	}
	raw, kept := numbers(data), numbers(back)
	if m, ok := raw.(map[string]any); ok {
		for _, k := range skip {
			delete(m, k)
		}
	}
	*extra = nil
	leftover("", raw, kept, extra)
	sort.Slice(*extra, func(i, j int) bool { return (*extra)[i].Key < (*extra)[j].Key })
	return rest, nil
}

// numbers decodes JSON keeping numbers as written.
func numbers(data []byte) any {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	d.Decode(&v)
	return v
}

// leftover appends to out what raw holds that kept (the same JSON after a
// round trip through the typed structs) lost.
func leftover(path string, raw, kept any, out *[]field) {
	switch r := raw.(type) {
	case map[string]any:
		k, _ := kept.(map[string]any)
		for key, v := range r {
			p := key
			if path != "" {
				p = path + "." + key
			}
			kv, ok := k[key]
			if !ok {
				*out = append(*out, field{p, v})
				continue
			}
			leftover(p, v, kv, out)
		}
	case []any:
		k, _ := kept.([]any)
		for i, v := range r {
			p := fmt.Sprintf("%s[%d]", path, i)
			if i >= len(k) {
				*out = append(*out, field{p, v})
				continue
			}
			leftover(p, v, k[i], out)
		}
	}
}

// jsonError adds the line and column to a decoding error that has an
// offset.
func jsonError(data []byte, err error) error {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	}
	if off < 0 || off > int64(len(data)) {
		return err
	}
	// Offset counts the bytes read, the offending one included.
	if off > 0 {
		off--
	}
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	col := int(off) - bytes.LastIndexByte(data[:off], '\n')
	return fmt.Errorf("line %d, column %d: %w", line, col, err)
}
