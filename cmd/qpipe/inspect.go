package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/qpipe/qpipe/internal/bytesize"
	"github.com/qpipe/qpipe/internal/litertlm"
	"github.com/qpipe/qpipe/internal/tflite"
)

func init() {
	register(command{
		name:    "inspect",
		usage:   "MODEL.tflite|BUNDLE.litertlm [--json]",
		summary: "show a model's layout, subgraphs, signatures, operators, tensors and weight bytes (a bundle's sections and each model's)",
		run:     inspectCmd,
	})
}

func inspectCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	asJSON := fs.Bool("json", false, "print the summary as JSON (schema: tflite.Summary)")
	flags, pos := flagArgs(args, nil)
	if err := fs.Parse(flags); err != nil {
		return usagef("%v", err)
	}
	if len(pos) != 1 {
		return usagef("want one model file")
	}
	if litertlm.Sniff(pos[0]) {
		return inspectBundle(pos[0], *asJSON, stdout)
	}
	m, err := tflite.Open(pos[0])
	if err != nil {
		return err
	}
	defer m.Close()
	s := tflite.Inspect(m)
	if *asJSON {
		return writeJSON(stdout, s)
	}
	return printInspect(stdout, s)
}

// printInspect writes the human-readable form of s: a header, then one
// aligned table per section.
func printInspect(w io.Writer, s *tflite.Summary) error {
	pw := &inspectWriter{w: w}
	fmt.Fprintf(pw, "model     %s\n", s.Model)
	fmt.Fprintf(pw, "file      %s, %s layout, schema version %d", bytesize.Format(s.FileBytes), s.Layout, s.Version)
	if s.Description != "" {
		fmt.Fprintf(pw, ", %q", s.Description)
	}
	fmt.Fprintf(pw, "\nbuffers   %d, %s of data\n", s.Buffers, bytesize.Format(s.DataBytes))
	fmt.Fprintf(pw, "weights   %s\n", bytesize.Format(s.WeightBytes))

	if len(s.WeightsByType) > 0 {
		fmt.Fprintln(pw, "\nWeights by type")
		tw := tabwriter.NewWriter(pw, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  TYPE\tTENSORS\tBUFFERS\tBYTES")
		for _, t := range s.WeightsByType {
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%d (%s)\n", t.Type, t.Tensors, t.Buffers, t.Bytes, bytesize.Format(t.Bytes))
		}
		tw.Flush()
	}

	fmt.Fprintln(pw, "\nOperators")
	tw := tabwriter.NewWriter(pw, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  OP\tVERSION\tCOUNT")
	for _, o := range s.Operators {
		fmt.Fprintf(tw, "  %s\t%d\t%d\n", o.Op, o.Version, o.Count)
	}
	tw.Flush()

	fmt.Fprintln(pw, "\nSignatures")
	if len(s.Signatures) == 0 {
		fmt.Fprintln(pw, "  (none)")
	}
	for _, sig := range s.Signatures {
		fmt.Fprintf(pw, "  %s (subgraph %d)\n", sig.Key, sig.Subgraph)
		tw := tabwriter.NewWriter(pw, 0, 0, 2, ' ', 0)
		for _, list := range []struct {
			dir string
			ts  []tflite.SigTensor
		}{{"in", sig.Inputs}, {"out", sig.Outputs}} {
			for _, t := range list.ts {
				fmt.Fprintf(tw, "    %s\t%s\ttensor %d\t%s\t%s\n", list.dir, t.Name, t.Tensor, t.Type, tflite.ShapeString(t.Shape, t.ShapeSignature))
			}
		}
		tw.Flush()
	}

	for _, sg := range s.Subgraphs {
		name := ""
		if sg.Name != "" {
			name = fmt.Sprintf(" %q", sg.Name)
		}
		fmt.Fprintf(pw, "\nSubgraph %d%s: %d tensors, %d operators, inputs %v, outputs %v\n",
			sg.Index, name, sg.NumTensors, sg.NumOperators, sg.Inputs, sg.Outputs)
		tw := tabwriter.NewWriter(pw, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  #\tNAME\tTYPE\tSHAPE\tQUANTIZATION\tBYTES\tCONST\tBUFFER")
		for _, t := range sg.Tensors {
			constant := ""
			if t.Constant {
				constant = "yes"
			}
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%d\t%s\t%d\n", t.Index, t.Name, t.Type,
				tflite.ShapeString(t.Shape, t.ShapeSignature), t.Quantization.String(), t.Bytes, constant, t.Buffer)
		}
		tw.Flush()
	}

	if len(s.Metadata) > 0 {
		fmt.Fprintln(pw, "\nMetadata")
		tw := tabwriter.NewWriter(pw, 0, 0, 2, ' ', 0)
		for _, md := range s.Metadata {
			fmt.Fprintf(tw, "  %s\tbuffer %d\t%d bytes\n", md.Name, md.Buffer, md.Bytes)
		}
		tw.Flush()
	}
	return pw.err
}

// inspectWriter keeps the first write error so that printing code can ignore
// them until the end.
type inspectWriter struct {
	w   io.Writer
	err error
}

func (e *inspectWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

// BundleSummary is `qpipe inspect --json` of a LiteRT-LM bundle.
type BundleSummary struct {
	Bundle      string           `json:"bundle"`
	Version     string           `json:"version"`
	FileBytes   int64            `json:"file_bytes"`
	HeaderBytes int64            `json:"header_bytes"`
	System      map[string]any   `json:"system_metadata"`
	Sections    []SectionSummary `json:"sections"`
}

// SectionSummary is one section of a bundle; Model is set for TFLiteModel
// sections.
type SectionSummary struct {
	Index     int             `json:"index"`
	Type      string          `json:"type"`
	ModelType string          `json:"model_type,omitempty"`
	Tokenizer string          `json:"tokenizer,omitempty"`
	Begin     int64           `json:"begin"`
	End       int64           `json:"end"`
	Bytes     int64           `json:"bytes"`
	Items     map[string]any  `json:"items,omitempty"`
	Model     *tflite.Summary `json:"model,omitempty"`
}

func kvMap(kvs []litertlm.KV) map[string]any {
	if len(kvs) == 0 {
		return nil
	}
	m := map[string]any{}
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	return m
}

func inspectBundle(path string, asJSON bool, stdout io.Writer) error {
	b, err := litertlm.Open(path)
	if err != nil {
		return err
	}
	defer b.Close()
	sum := &BundleSummary{Bundle: path, Version: fmt.Sprintf("%d.%d.%d", b.Major, b.Minor, b.Patch),
		FileBytes: b.Size, HeaderBytes: b.HeaderEnd(), System: kvMap(b.System)}
	for _, sec := range b.Sections {
		ss := SectionSummary{Index: sec.Index, Type: sec.Type.String(), ModelType: sec.ModelType(),
			Begin: sec.Begin, End: sec.End, Bytes: sec.Len(), Items: kvMap(sec.Items)}
		switch sec.Type {
		case litertlm.TypeSPTokenizer:
			ss.Tokenizer = "sentencepiece"
		case litertlm.TypeHFTokenizerZlib:
			ss.Tokenizer = "huggingface"
		case litertlm.TypeTFLiteModel:
			m, err := tflite.OpenSection(path, sec.Begin, sec.Len(), path+" "+sec.Name())
			if err != nil {
				return err
			}
			ss.Model = tflite.Inspect(m)
			m.Close()
		}
		sum.Sections = append(sum.Sections, ss)
	}
	if asJSON {
		return writeJSON(stdout, sum)
	}
	pw := &inspectWriter{w: stdout}
	fmt.Fprintf(pw, "bundle    %s\n", path)
	fmt.Fprintf(pw, "file      %s, LiteRT-LM version %s, header %d bytes, %d sections\n", bytesize.Format(b.Size), sum.Version, b.HeaderEnd(), len(b.Sections))
	printKVs(pw, "System metadata", b.System)
	fmt.Fprintln(pw, "\nSections")
	tw := tabwriter.NewWriter(pw, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  #\tTYPE\tMODEL TYPE\tBEGIN\tEND\tBYTES\tITEMS")
	for _, ss := range sum.Sections {
		var items []string
		for _, kv := range b.Sections[ss.Index].Items {
			if kv.Key != "model_type" {
				items = append(items, fmt.Sprintf("%s=%v", kv.Key, kv.Value))
			}
		}
		typ := ss.Type
		if ss.Tokenizer != "" {
			typ += " (" + ss.Tokenizer + ")"
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%#x\t%#x\t%d (%s)\t%s\n", ss.Index, typ, ss.ModelType, ss.Begin, ss.End, ss.Bytes, bytesize.Format(ss.Bytes), strings.Join(items, " "))
	}
	tw.Flush()
	if pw.err != nil {
		return pw.err
	}
	for _, ss := range sum.Sections {
		if ss.Model == nil {
			continue
		}
		fmt.Fprintf(pw, "\n=== section %d: %s %s ===\n", ss.Index, ss.Type, ss.ModelType)
		if err := printInspect(pw, ss.Model); err != nil {
			return err
		}
	}
	return pw.err
}

func printKVs(w io.Writer, title string, kvs []litertlm.KV) {
	if len(kvs) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s\n", title)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, kv := range kvs {
		fmt.Fprintf(tw, "  %s\t%v\n", kv.Key, kv.Value)
	}
	tw.Flush()
}
