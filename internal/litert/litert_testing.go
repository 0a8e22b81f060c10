package litert

import (
	"context"
	"errors"
	"os"
	"strconv"
	"sync"
	"testing"
)

var shared struct {
	once   sync.Once
	runner *Runner
	err    error
}

// Require returns a runner shared by every test of the test binary,
// starting it on first use. When the runtime is unavailable (no Node.js, or
// `npm ci` not run in internal/litert/runner) it skips the test, except on
// CI (environment CI=true), where a missing Node or package is a failure.
// Any other start failure fails the test. The runner ends with the test
// binary: its process exits when its stdin closes.
func Require(t testing.TB) *Runner {
	t.Helper()
	shared.once.Do(func() {
		shared.runner, shared.err = Start(context.Background())
	})
	if shared.err != nil {
		if errors.Is(shared.err, ErrUnavailable) && !onCI() {
			t.Skipf("LiteRT oracle not available (on CI this fails): %v", shared.err)
		}
		t.Fatal(shared.err)
	}
	return shared.runner
}

func onCI() bool {
	ci, err := strconv.ParseBool(os.Getenv("CI"))
	return err == nil && ci
}
