package config

import (
	"errors"
	"os"
	"strings"
	"testing"
	"unicode/utf16"
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
		lines := yamlLines(data)
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

// yamlLines counts the lines of data as the YAML scanner does: UTF-16 when it
// starts with a byte order mark, broken at \n, \r\n, a lone \r, NEL, LS and PS.
func yamlLines(data []byte) int {
	text := string(data)
	if len(data) >= 2 && (data[0] == 0xfe && data[1] == 0xff || data[0] == 0xff && data[1] == 0xfe) {
		u := make([]uint16, 0, len(data)/2)
		for i := 2; i+1 < len(data); i += 2 {
			if data[0] == 0xfe {
				u = append(u, uint16(data[i])<<8|uint16(data[i+1]))
			} else {
				u = append(u, uint16(data[i+1])<<8|uint16(data[i]))
			}
		}
		text = string(utf16.Decode(u))
	}
	text = strings.ReplaceAll(text, "\r\n", "\n")
	return 1 + strings.Count(text, "\n") + strings.Count(text, "\r") + strings.Count(text, "\u0085") + strings.Count(text, "\u2028") + strings.Count(text, "\u2029")
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
