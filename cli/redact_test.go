package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/backproof/backproof/backup"
	"github.com/backproof/backproof/internal/redact"
	"github.com/backproof/backproof/prune"
	"github.com/backproof/backproof/verify"
)

// hostile are passwords that broke --json when it was masked after
// encoding: one with characters JSON escapes (it passed in its escaped
// form), JSON words and a common word (they corrupted the document).
var hostile = []string{`Sntl&<>"\'x`, "true", "false", "null", "postgres"}

// Every --json document is masked in its decoded string values: a password
// in any error text is gone, whatever characters it has, and the document
// stays valid JSON with its keys, numbers and booleans intact.
func TestJSONOutputMasksBeforeEncoding(t *testing.T) {
	for _, secret := range hostile {
		dsn := "postgres://app:" + secret + "@db:5432/orders"
		msg := "connect " + dsn + ": password " + secret + " rejected"
		rec := &verify.Record{Target: "orders", Destination: "local", Outcome: verify.Error, Reason: msg}
		docs := map[string]any{
			"backup": struct {
				Backups []*backup.Result `json:"backups"`
			}{[]*backup.Result{{Target: "orders", Error: msg, Destinations: []backup.DestinationResult{{Name: "local", Error: msg}}}}},
			"list": struct {
				Backups []listEntry   `json:"backups"`
				Errors  []listFailure `json:"errors"`
			}{[]listEntry{{Target: "orders", Problem: msg, Verification: &lastVerification{Outcome: verify.Fail, Reason: msg}}},
				[]listFailure{{Target: "orders", Destination: "local", Error: msg}}},
			"prune": struct {
				Prune []*prune.Report `json:"prune"`
			}{[]*prune.Report{{Target: "orders", Error: msg, DryRun: true, Destinations: []prune.DestinationReport{{Name: "local", Error: msg}}}}},
			"verify":  struct{ Verifications []*verify.Record }{[]*verify.Record{rec}},
			"restore": restoreResult{Target: "orders", DryRun: true, Size: 12345, Verification: rec},
			"receipt": struct {
				Authentic bool   `json:"authentic"`
				Problem   string `json:"problem"`
			}{false, msg},
		}
		for name, doc := range docs {
			var out bytes.Buffer
			e := &env{stdout: &out, redactor: redact.New(dsn)}
			if err := e.writeJSON(doc); err != nil {
				t.Fatalf("%s %q: %v", name, secret, err)
			}
			var back any
			if err := json.Unmarshal(out.Bytes(), &back); err != nil {
				t.Fatalf("%s with password %q: not JSON: %v\n%s", name, secret, err, out.Bytes())
			}
			if leaked(back, secret) || !strings.Contains(out.String(), redact.Mask) {
				t.Errorf("%s with password %q: not masked:\n%s", name, secret, out.Bytes())
			}
			if want, _ := json.Marshal(doc); keys(t, want) != keys(t, out.Bytes()) {
				t.Errorf("%s with password %q: keys changed:\n%s", name, secret, out.Bytes())
			}
		}
	}
}

// leaked reports whether a string value holds secret.
func leaked(v any, secret string) bool {
	switch v := v.(type) {
	case string:
		return strings.Contains(v, secret)
	case []any:
		for _, e := range v {
			if leaked(e, secret) {
				return true
			}
		}
	case map[string]any:
		for _, e := range v {
			if leaked(e, secret) {
				return true
			}
		}
	}
	return false
}

// keys lists a document's keys and non-string values, in order.
func keys(t *testing.T, data []byte) string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	var b strings.Builder
	for {
		tok, err := dec.Token()
		if err != nil {
			return b.String()
		}
		if _, ok := tok.(string); !ok {
			fmt.Fprint(&b, tok, " ")
		}
	}
}

// The commands themselves, run end to end against a source that refuses
// connections: with a password that is a JSON word, each prints one valid
// JSON document.
func TestJSONCommandsWithCommonWordPasswords(t *testing.T) {
	for _, secret := range []string{"false", "true"} {
		cfg := writeConfig(t, fmt.Sprintf(`
destinations:
  local: {type: local, path: %s}
targets:
  orders:
    engine: postgres
    dsn: postgres://app:%s@127.0.0.1:1/orders?sslmode=disable
    destinations: [local]
`, t.TempDir(), secret))
		for _, args := range [][]string{
			{"backup", "--json"}, {"list", "--json"}, {"prune", "--json"}, {"verify", "--json"},
		} {
			r := runCLI(t, context.Background(), append(args, "-c", cfg)...)
			var doc map[string]any
			if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || len(doc) == 0 {
				t.Errorf("%v with password %q: exit %d, not one JSON document: %v\n%s", args, secret, r.code, err, r.stdout)
			}
		}
	}
}
