package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/qpipe/qpipe/internal/atomicfile"
	"github.com/qpipe/qpipe/pipeline"
	"github.com/qpipe/qpipe/report"
)

func init() {
	register(command{
		name:    "report",
		usage:   "RUN.json [-o DIR]",
		summary: "an HTML page (DIR/report.html) of an earlier `run --json`; RUN.json may be - for stdin; DIR defaults to RUN.json's folder",
		run:     reportCmd,
	})
}

// reportFile is the page's name in the report folder.
const reportFile = "report.html"

func reportCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dir := fs.String("o", "", "folder to write report.html to")
	flags, pos := flagArgs(args, map[string]bool{"o": true})
	if err := fs.Parse(flags); err != nil {
		return usagef("%v", err)
	}
	if len(pos) != 1 {
		return usagef("want one RUN.json (the output of qpipe run --json)")
	}
	var data []byte
	var err error
	if pos[0] == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(pos[0])
	}
	if err != nil {
		return err
	}
	if *dir == "" {
		*dir = "."
		if pos[0] != "-" {
			*dir = filepath.Dir(pos[0])
		}
	}
	path, err := writeReport(*dir, data)
	if err != nil {
		if pos[0] != "-" {
			return fmt.Errorf("%s: %w", pos[0], err)
		}
		return err
	}
	fmt.Fprintf(stderr, "wrote %s\n", path)
	return nil
}

// writeReport renders a run report into dir/report.html, replacing it
// whole or not at all.
func writeReport(dir string, runJSON []byte) (string, error) {
	var page bytes.Buffer
	if err := report.HTML(&page, runJSON); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("cannot create the report folder: %w", err)
	}
	path := filepath.Join(dir, reportFile)
	return path, atomicfile.WriteFile(path, page.Bytes(), 0o644, false)
}

// runReportJSON is the JSON `run --json` prints for these reports.
func runReportJSON(reports []*pipeline.JobReport) ([]byte, error) {
	var b bytes.Buffer
	err := writeJSON(&b, map[string]any{"jobs": reports})
	return b.Bytes(), err
}
