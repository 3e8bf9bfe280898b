// Package prometheus holds the shipped alert rules; its test runs promtool
// over them.
package prometheus

import (
	"os/exec"
	"testing"

	"github.com/backproof/backproof/internal/testenv"
)

func TestAlertRules(t *testing.T) {
	promtool := testenv.Require(t, testenv.EnvPromtool)
	for _, args := range [][]string{
		{"check", "rules", "alerts.yml"},
		{"test", "rules", "alerts_test.yml"},
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}
