package mysql

import (
	"testing"

	"github.com/backproof/backproof/engine/enginetest"
)

// FuzzDSN: the password the driver sends is one the redactor masks; errors
// and descriptions quote none.
func FuzzDSN(f *testing.F) {
	enginetest.FuzzDSN(f, Kind, []string{
		"mysql://app:pw@db:3306/shop?tls=true", "mariadb://app:p%40ss@db/shop?ca=/etc/ca.pem", "mysql://app@db",
		"mysql://u:p&<>\"x@h/db", "mysql://:x@h", "mysql://u:secret@h/db?secret=1", "mysql://u:pw@h:99999/",
	}, func(s string) (string, string, error) {
		d, err := parseDSN(s)
		if err != nil {
			return "", "", err
		}
		cfg, err := d.config(d.db)
		if err != nil {
			return "", "", err
		}
		return cfg.Passwd, d.describe(), nil
	})
}
