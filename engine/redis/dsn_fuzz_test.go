package redis

import (
	"strings"
	"testing"

	"github.com/backproof/backproof/engine/enginetest"
)

// FuzzDSN: the password AUTH sends is one the redactor masks; errors and
// descriptions quote none.
func FuzzDSN(f *testing.F) {
	for _, s := range []string{
		"redis://:pw@cache:6379/0", "rediss://backup:p%40ss@cache:6380/3?cacert=/etc/ca.pem", "redis://h",
		"redis://u:p&<>\"x@h", "redis://:@h/x", "redis://:secret@h?secret=1", "unix:///tmp/redis.sock",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseDSN(s)
		if err != nil {
			enginetest.QuotesNoPassword(t, Kind, s, err.Error())
			return
		}
		enginetest.KnownPassword(t, Kind, s, d.password)
		if !strings.Contains(d.host+d.port, d.password) {
			enginetest.QuotesNoPassword(t, Kind, s, d.String()+" "+Describe(s))
		}
	})
}
