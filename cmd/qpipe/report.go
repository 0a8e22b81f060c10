package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

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
	path, err := report.WriteFile(*dir, data)
	if err != nil {
		if pos[0] != "-" {
			return fmt.Errorf("%s: %w", pos[0], err)
		}
		return err
	}
	fmt.Fprintf(stderr, "wrote %s\n", path)
	return nil
}
