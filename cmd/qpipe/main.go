// Command qpipe quantizes the weights of on-device generative models stored
// as .tflite (LiteRT) files, driven by declarative YAML job files.
//
// Exit codes:
//
//	0   success
//	1   a job, a model or an output failed (the message says which and why)
//	2   the command line is wrong (unknown command, flag or argument)
//	130 interrupted (Ctrl-C); no partial output is left behind
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"sort"
)

// Exit codes, documented above and in the README.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// command is one subcommand. Each lives in its own file and registers itself.
type command struct {
	name    string
	usage   string // one line: arguments after the command name
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{}

func register(c command) { commands[c.name] = c }

// usageError is a command-line mistake: exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// exitError carries an exit code for a failure already reported.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}
func (e exitError) Unwrap() error { return e.err }

func main() {
	// QPIPE_CPUPROFILE=FILE writes a CPU profile for `go tool pprof`.
	if path := os.Getenv("QPIPE_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			code := runMain(os.Args[1:], os.Stdout, os.Stderr)
			pprof.StopCPUProfile()
			f.Close()
			os.Exit(code)
		}
	}
	os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
}

func runMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "qpipe: unknown command %q\n\n", args[0])
		printUsage(stderr)
		return exitUsage
	}
	err := c.run(args[1:], stdout, stderr)
	if err == nil {
		return exitOK
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "qpipe %s: %s\nusage: qpipe %s %s\n", c.name, ue.msg, c.name, c.usage)
		return exitUsage
	}
	var ee exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(stderr, "qpipe %s: %v\n", c.name, ee.err)
		}
		return ee.code
	}
	fmt.Fprintf(stderr, "qpipe %s: %v\n", c.name, err)
	return exitFailed
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "qpipe quantizes the weights of .tflite (LiteRT) models, driven by YAML job files.")
	fmt.Fprintln(w, "\nUsage:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := commands[n]
		fmt.Fprintf(w, "  qpipe %s %s\n      %s\n", c.name, c.usage, c.summary)
	}
	fmt.Fprintln(w, "\nExit codes: 0 ok, 1 failed, 2 usage error, 130 interrupted.")
}
