package config

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
)

// FuzzParse: whatever the file holds, Parse returns a config or an *Error
// whose every problem names the file and a line of it, without a panic and
// in bounded time (aliases count against maxNodes). A secret from the
// environment never shows in a problem about a secret field.
func FuzzParse(f *testing.F) {
	example, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	for _, s := range []string{
		"", "targets: {}", "a: &x [*x]", "targets:\n  t:\n    dsn: ${PW}\n    dsn_file: /nonexistent\n",
		"destinations: {d: {type: s3, secret_access_key: ${PW:-x}}}", "<<: {log: {level: 3}}", "- 1\n- 2", "x: 1\n---\ny: 2",
		"targets:\n  t: &t {engine: redis, dsn: 'redis://:${PW}@h'}\n  u: *t\n", "log: {level: info, level: debug}",
	} {
		f.Add([]byte(s))
	}
	const secret = "Sntl-fuzz-Zq8"
	env := func(k string) (string, bool) { return secret, k == "PW" }
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "/nonexistent/fuzz.yaml", env)
		if err == nil {
			c.Secrets()
			return
		}
		var ce *Error
		if !errors.As(err, &ce) || len(ce.Problems) == 0 {
			t.Fatalf("error of type %T: %v", err, err)
		}
		// YAML breaks lines at \n, \r\n and a lone \r.
		lines := bytes.Count(bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n")), []byte("\n")) + bytes.Count(data, []byte("\r")) - bytes.Count(data, []byte("\r\n")) + 1
		for _, p := range ce.Problems {
			if p.File != "/nonexistent/fuzz.yaml" || p.Line < 0 || p.Line > lines+1 || p.Msg == "" {
				t.Fatalf("problem %+v of a %d-line file", p, lines)
			}
			if secretPath(p.Path) && strings.Contains(p.Msg, secret) {
				t.Fatalf("problem shows the secret: %s", p)
			}
		}
	})
}

// secretPath reports whether the key path is of a field that holds a secret.
func secretPath(p string) bool {
	for _, k := range []string{"dsn", "secret_access_key", "access_key_id", "session_token", "identity", "key"} {
		if strings.HasSuffix(p, "."+k) || strings.HasSuffix(p, "."+k+"_file") {
			return true
		}
	}
	return false
}
