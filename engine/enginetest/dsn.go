package enginetest

import (
	"slices"
	"strings"
	"testing"

	"github.com/backproof/backproof/config"
	"github.com/backproof/backproof/engine"
)

// KnownPassword fails t when password, what a parser or driver took from
// dsn to send to the server, is not among the secrets the redactor learns
// from dsn (the engine's Kind.Secrets and config.DSNPasswords): a message
// quoting it would go out unmasked.
func KnownPassword(t testing.TB, k engine.Kind, dsn, password string) {
	t.Helper()
	if password == "" {
		return
	}
	known := append(k.Secrets(dsn), config.DSNPasswords(dsn)...)
	if !slices.Contains(known, password) {
		t.Fatalf("%q: the password %q is not among the secrets the redactor learns (%q)", dsn, password, known)
	}
}

// QuotesNoPassword fails t when msg, an error or description made from
// dsn, holds a password the redactor knows from it. Passwords shorter than
// 6 bytes are left out: they occur in ordinary words.
func QuotesNoPassword(t testing.TB, k engine.Kind, dsn, msg string) {
	t.Helper()
	for _, p := range append(k.Secrets(dsn), config.DSNPasswords(dsn)...) {
		if len(p) >= 6 && strings.Contains(msg, p) {
			t.Fatalf("%q: %q shows the password %q", dsn, msg, p)
		}
	}
}

// FuzzDSN fuzzes an engine's DSN handling from seeds. parse returns the
// password that would be sent to the server and how the server is
// described in messages. That password must be one the redactor masks, and
// neither parse's error nor the description may show it (unless the DSN
// holds it elsewhere too, e.g. as its host).
func FuzzDSN(f *testing.F, k engine.Kind, seeds []string, parse func(dsn string) (password, describe string, err error)) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dsn string) {
		password, describe, err := parse(dsn)
		if err != nil {
			QuotesNoPassword(t, k, dsn, err.Error())
			return
		}
		KnownPassword(t, k, dsn, password)
		if password == "" || strings.Count(dsn, password) == 1 {
			QuotesNoPassword(t, k, dsn, describe)
		}
	})
}
