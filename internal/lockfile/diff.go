package lockfile

import "fmt"

// Diff lists how the lock b differs from a, one finding per line, each
// naming the file or field concerned; nil when they are the same.
func Diff(a, b *Lock) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	if a.Tool.Version != b.Tool.Version {
		add("qpipe version %s, was %s", b.Tool.Version, a.Tool.Version)
	}
	if a.Tool.Build != b.Tool.Build {
		add("qpipe build %s, was %s", b.Tool.Build, a.Tool.Build)
	}
	if a.Tool.Platform != b.Tool.Platform {
		add("go %s, was %s", b.Tool.Platform, a.Tool.Platform)
	}
	if a.Job.Path != b.Job.Path {
		add("job file %s, was %s", b.Job.Path, a.Job.Path)
	} else if a.Job.SHA256 != b.Job.SHA256 {
		add("job file %s changed (sha256:%s, was sha256:%s)", b.Job.Path, short(b.Job.SHA256), short(a.Job.SHA256))
	}
	if a.Options != b.Options {
		add("options %s, were %s", b.Options, a.Options)
	}
	for _, ob := range b.Outputs {
		oa := a.Output(ob.File.Path)
		if oa == nil {
			add("output %s: new", ob.File.Path)
			continue
		}
		if oa.Recipe != ob.Recipe {
			add("output %s: recipe %s, was %s", ob.File.Path, ob.Recipe, oa.Recipe)
		}
		if d := fileDiff(oa.Input, ob.Input); d != "" {
			add("output %s: input %s", ob.File.Path, d)
		}
		if d := fileDiff(oa.File, ob.File); d != "" {
			add("output %s: %s", ob.File.Path, d)
		}
	}
	for _, oa := range a.Outputs {
		if b.Output(oa.File.Path) == nil {
			add("output %s: no longer written", oa.File.Path)
		}
	}
	return out
}

// fileDiff says how b differs from a, or "".
func fileDiff(a, b File) string {
	switch {
	case a.Path != b.Path:
		return fmt.Sprintf("%s, was %s", b.Path, a.Path)
	case a.Size != b.Size:
		return fmt.Sprintf("%s has %d bytes, the lock %d", b.Path, b.Size, a.Size)
	case a.SHA256 != b.SHA256:
		return fmt.Sprintf("%s has sha256:%s, the lock sha256:%s", b.Path, short(b.SHA256), short(a.SHA256))
	}
	return ""
}

// short abbreviates a digest for messages.
func short(h string) string {
	if len(h) > 12 {
		return h[:12] + "…"
	}
	return h
}
