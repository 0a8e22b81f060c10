package runner

import (
	"fmt"

	"github.com/qpipe/qpipe/internal/lockfile"
)

// Mode is what a run does with the lock files.
type Mode int

const (
	// Update skips jobs up to date with their lock and writes new locks.
	Update Mode = iota
	// Force redoes every job and rewrites its lock.
	Force
	// Check rebuilds into a temporary folder and compares with the locks;
	// it changes nothing.
	Check
	// Locked fails instead of creating or changing a lock; outputs are
	// moved into place only when they match it.
	Locked
)

func (m Mode) String() string {
	return [...]string{"update", "force", "check", "locked"}[m]
}

// Action is what Decide chose for one job.
type Action int

const (
	// Build runs the job (into its destinations, or staged with Locked).
	Build Action = iota
	// Skip reports the job up to date with its lock.
	Skip
	// Compare rebuilds the job aside and compares it with the lock (Check).
	Compare
)

func (a Action) String() string { return [...]string{"build", "skip", "compare"}[a] }

// Decide is the lock policy of one job: old is its lock on disk (nil: none),
// want the lock a run would write without the digests, and stale says why
// the outputs are not up to date with old (nil: they are; called only when
// needed, since it reads files). It returns the action, the reasons a job
// with a lock is rebuilt, or why the mode refuses to run it.
func Decide(mode Mode, lockPath, jobPath string, old, want *lockfile.Lock, stale func() []string) (Action, []string, error) {
	if mode == Check {
		if old == nil {
			return 0, nil, fmt.Errorf("no lock file %s; run `qpipe run %s` to write one", lockPath, jobPath)
		}
		return Compare, nil, nil
	}
	var reasons []string
	if old != nil && mode != Force {
		if reasons = stale(); reasons == nil {
			return Skip, nil, nil
		}
	}
	if mode == Locked {
		if old == nil {
			return 0, reasons, fmt.Errorf("no lock file %s; --locked does not create one (run without --locked and commit it)", lockPath)
		}
		if d := headerDiff(old, want); d != nil {
			return 0, reasons, fmt.Errorf("the lock %s would change (--locked):\n%s", lockPath, joinLines(d))
		}
	}
	return Build, reasons, nil
}

// WriteLock says whether a build that produced got records it: with Locked,
// a lock that would change is an error (the staged outputs are dropped);
// otherwise a lock is written when there was none, when it changed, or with
// Force.
func WriteLock(mode Mode, lockPath string, old, got *lockfile.Lock) (bool, error) {
	changed := old == nil || lockfile.Diff(old, got) != nil
	if mode == Locked {
		if d := lockfile.Diff(old, got); d != nil {
			return false, fmt.Errorf("the lock %s would change (--locked); the outputs were left as they were:\n%s", lockPath, joinLines(d))
		}
		return false, nil
	}
	return changed || mode == Force, nil
}
