package mysql

import (
	"strings"
	"testing"

	"github.com/backproof/backproof/engine/enginetest"
)

// FuzzDSN: the password the driver sends is one the redactor masks; errors
// and descriptions quote none.
func FuzzDSN(f *testing.F) {
	for _, s := range []string{
		"mysql://app:pw@db:3306/shop?tls=true", "mariadb://app:p%40ss@db/shop?ca=/etc/ca.pem", "mysql://app@db",
		"mysql://u:p&<>\"x@h/db", "mysql://:x@h", "mysql://u:secret@h/db?secret=1", "mysql://u:pw@h:99999/",
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
		cfg, err := d.config(d.db)
		if err != nil {
			enginetest.QuotesNoPassword(t, Kind, s, err.Error())
			return
		}
		enginetest.KnownPassword(t, Kind, s, cfg.Passwd)
		if !strings.Contains(d.describe(), d.password) || d.password == "" {
			return
		}
		if !strings.Contains(d.host+d.db, d.password) {
			t.Fatalf("%q: description %q shows the password", s, d.describe())
		}
	})
}
