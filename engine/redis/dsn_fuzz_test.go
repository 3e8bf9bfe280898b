package redis

import (
	"testing"

	"github.com/backproof/backproof/engine/enginetest"
)

// FuzzDSN: the password AUTH sends is one the redactor masks; errors and
// descriptions quote none.
func FuzzDSN(f *testing.F) {
	enginetest.FuzzDSN(f, Kind, []string{
		"redis://:pw@cache:6379/0", "rediss://backup:p%40ss@cache:6380/3?cacert=/etc/ca.pem", "redis://h",
		"redis://u:p&<>\"x@h", "redis://:@h/x", "redis://:secret@h?secret=1", "unix:///tmp/redis.sock",
	}, func(s string) (string, string, error) {
		d, err := parseDSN(s)
		if err != nil {
			return "", "", err
		}
		return d.password, d.String() + " " + Describe(s), nil
	})
}
