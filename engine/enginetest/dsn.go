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
// neither parse's error nor the description may show it.
func FuzzDSN(f *testing.F, k engine.Kind, seeds []string, parse func(dsn string) (password, describe string, err error)) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dsn string) {
		password, describe, err := parse(dsn)
		msg := describe
		if err != nil {
			msg = err.Error()
		} else {
			KnownPassword(t, k, dsn, password)
		}
		for _, p := range append(k.Secrets(dsn), config.DSNPasswords(dsn)...) {
			if len(p) < 6 || !strings.Contains(msg, p) || err == nil && strings.Count(dsn, p) > 1 {
				continue // a description may show a host that happens to equal the password
			}
			// Quoted from the DSN, or part of the message's own text (a
			// password "tgres://")? Without it in the DSN, the text stays.
			_, d2, err2 := parse(strings.ReplaceAll(dsn, p, strings.Repeat("Z", len(p))))
			if err2 != nil {
				d2 = err2.Error()
			}
			if !strings.Contains(d2, p) {
				t.Fatalf("%q: %q shows the password %q", dsn, msg, p)
			}
		}
	})
}
