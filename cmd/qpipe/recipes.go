package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/qpipe/qpipe/config"
)

func init() {
	register(command{
		name:    "recipes",
		usage:   "[--json | --export-aeq NAME]",
		summary: "list the preset recipes and schemes, or write a preset as an AI Edge Quantizer recipe",
		run:     recipesCmd,
	})
}

func recipesCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("recipes", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	asJSON := fs.Bool("json", false, "print as JSON")
	exportAEQ := fs.String("export-aeq", "", "write the preset NAME as an AI Edge Quantizer recipe (JSON)")
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *exportAEQ != "" {
		if *asJSON {
			return usagef("--json and --export-aeq are exclusive")
		}
		r, err := config.Preset(*exportAEQ)
		if err != nil {
			return usagef("%v", err)
		}
		rules, err := r.AEQRules()
		if err != nil {
			return err
		}
		out, err := config.MarshalAEQ(rules)
		if err != nil {
			return err
		}
		_, err = stdout.Write(out)
		return err
	}
	presets, schemes := config.Presets(), config.Schemes()
	if *asJSON {
		return writeJSON(stdout, map[string]any{"presets": presets, "schemes": schemes})
	}
	fmt.Fprintln(stdout, "Presets (qpipe quantize --recipe NAME, or `recipe: NAME` in a job file):")
	for _, p := range presets {
		fmt.Fprintf(stdout, "\n  %s  (suffix %s)\n      %s\n", p.Name, p.Suffix, wrap(p.Description, 90, "      "))
		if len(p.Deprecated) > 0 {
			fmt.Fprintf(stdout, "      also accepted (deprecated): %s\n", strings.Join(p.Deprecated, ", "))
		}
	}
	fmt.Fprintln(stdout, "\nSchemes (for per-role and per-layer recipes):")
	for _, s := range schemes {
		fmt.Fprintf(stdout, "\n  %s\n      %s\n", s.Name, wrap(s.Description, 90, "      "))
	}
	return nil
}

func wrap(s string, width int, prefix string) string {
	var b strings.Builder
	n := 0
	for i, w := range strings.Fields(s) {
		if i > 0 && n+1+len(w) > width {
			b.WriteString("\n" + prefix)
			n = 0
		} else if i > 0 {
			b.WriteByte(' ')
			n++
		}
		b.WriteString(w)
		n += len(w)
	}
	return b.String()
}
