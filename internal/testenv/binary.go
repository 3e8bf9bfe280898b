package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// EnvBinary names the backproof binary scripts/test.sh builds once per run.
const EnvBinary = "BACKPROOF_TEST_BIN"

var built struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

// Binary returns a backproof binary for tests that run it as a separate
// process: $BACKPROOF_TEST_BIN when set (scripts/test.sh builds it once for the
// whole run), else one `go build` per test process, shared by its tests.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(EnvBinary); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s: %v", EnvBinary, err)
		}
		return p
	}
	if Strict() {
		Unavailable(t, "%s is not set; scripts/test.sh builds the binary once and sets it", EnvBinary)
	}
	built.once.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			built.err = err
			return
		}
		// Left in the temp dir on purpose: the test process cannot know its
		// last user. It is one binary per `go test` of a package.
		dir, err := os.MkdirTemp("", "backproof-testbin-")
		if err != nil {
			built.err = err
			return
		}
		built.path = filepath.Join(dir, "backproof")
		built.out, built.err = exec.Command(goTool, "build", "-o", built.path, "github.com/backproof/backproof/cmd/backproof").CombinedOutput()
	})
	if built.err != nil {
		t.Fatalf("go build cmd/backproof: %v\n%s", built.err, built.out)
	}
	return built.path
}
