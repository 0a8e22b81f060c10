package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/qpipe/qpipe/internal/runner"
)

// version is set at release time with -ldflags "-X main.version=v1.2.3".
var version = "dev"

func init() {
	register(command{
		name:    "version",
		usage:   "",
		summary: "print qpipe's version",
		run: func(args []string, stdout, stderr io.Writer) error {
			if len(args) > 0 {
				return usagef("unexpected argument %q", args[0])
			}
			t := runner.Tool(versionString())
			fmt.Fprintf(stdout, "qpipe %s (%s, %s/%s, build %s)\n", t.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH, t.Build)
			return nil
		},
	})
}

// versionString is the version `qpipe version` prints and lock files
// record: the -X main.version value, else the module version of a
// `go install …@version` build, else dev.
func versionString() string {
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	return v
}
