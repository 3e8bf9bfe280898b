package redact

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

const sentinel = "S3ntinel-p4ss"

func TestString(t *testing.T) {
	r := New(
		"postgres://app:"+sentinel+"@db:5432/orders",
		"host=db user=app password='"+sentinel+"x' dbname=orders",
		"AKIA-key-id",
		"p@ss/"+sentinel,
	)
	for _, in := range []string{
		"connect postgres://app:" + sentinel + "@db:5432/orders failed",
		"FATAL: password " + sentinel + " rejected",
		"escaped: p%40ss%2F" + sentinel,
		"kv: " + sentinel + "x",
		"key AKIA-key-id denied",
	} {
		out := r.String(in)
		if strings.Contains(out, sentinel) || strings.Contains(out, "AKIA-key-id") || !strings.Contains(out, Mask) {
			t.Errorf("String(%q) = %q", in, out)
		}
	}
	if got := r.String("nothing secret here"); got != "nothing secret here" {
		t.Errorf("changed innocent text: %q", got)
	}
}

func TestHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(New(sentinel).Handler(slog.NewJSONHandler(&buf, nil)))
	log.With("dsn", "pw="+sentinel).WithGroup("g").Info("msg "+sentinel,
		"error", errors.New("failed with "+sentinel),
		"nested", slog.GroupValue(slog.String("k", sentinel)),
		"n", 3)
	if strings.Contains(buf.String(), sentinel) {
		t.Fatalf("sentinel in log output: %s", buf.String())
	}
	if !strings.Contains(buf.String(), `"n":3`) {
		t.Errorf("non-string attribute lost: %s", buf.String())
	}
}

// Passwords are masked by where they stand in a connection string, whatever
// their length and whether or not they are known.
func TestStructure(t *testing.T) {
	for in, want := range map[string]string{
		"dial postgres://app:pw@db:5432/x: refused":    "dial postgres://app:" + Mask + "@db:5432/x: refused",
		"mongodb://u:a@b@h1,h2/?authSource=admin":      "mongodb://u:" + Mask + "@h1,h2/?authSource=admin",
		"redis://:x@cache:6379":                        "redis://:" + Mask + "@cache:6379",
		"host=db password='a b\\'c' dbname=x":          "host=db password=" + Mask + " dbname=x",
		"host=db password=z user=u":                    "host=db password=" + Mask + " user=u",
		"postgres://h/db?sslmode=disable&password=q":   "postgres://h/db?sslmode=disable&password=" + Mask,
		"open app:s3@tcp(db:3306)/shop":                "open app:" + Mask + "@tcp(db:3306)/shop",
		"postgres://app@db/x and user@example.com":     "postgres://app@db/x and user@example.com",
		"wrong password for user app; password is set": "wrong password for user app; password is set",
	} {
		if got := New().String(in); got != want {
			t.Errorf("String(%q) = %q, want %q", in, got, want)
		}
	}
}

// JSON masks decoded string values only: escaped forms are found, and a
// secret that is a JSON word or an object key leaves the document valid.
func TestJSON(t *testing.T) {
	for _, secret := range []string{`p&<>"\'x`, "true", "postgres", "null", "error"} {
		r := New(secret)
		doc := map[string]any{
			"engine": "postgres", "ok": true, "n": 12345678901234567, "none": nil,
			"error": "auth failed for " + secret + " at postgres://u:" + secret + "@h/db",
			"list":  []any{secret, map[string]any{"x": []any{}}, 1.5},
		}
		out, err := r.Marshal(doc)
		if err != nil {
			t.Fatalf("%q: %v", secret, err)
		}
		var back map[string]any
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("%q: invalid JSON: %v\n%s", secret, err, out)
		}
		if strings.Contains(string(back["error"].(string)), secret) || back["list"].([]any)[0] != Mask {
			t.Errorf("%q: not masked: %s", secret, out)
		}
		if back["ok"] != true || back["none"] != nil || !strings.Contains(string(out), "12345678901234567") || len(back) != 6 {
			t.Errorf("%q: structure changed: %s", secret, out)
		}
	}
}

// A password holding # or ? (libpq and pgx read them as part of it) is
// learned and masked whole.
func TestURLPasswordWithHashAndQuestionMark(t *testing.T) {
	r := New("postgres://app:pa#s?s@db/orders")
	for _, in := range []string{"echo pa#s?s", "dial postgres://app:pa#s?s@db/orders"} {
		if got := r.String(in); strings.Contains(got, "pa#s?s") || strings.Contains(got, "s?s") {
			t.Errorf("String(%q) = %q", in, got)
		}
	}
	if got := New().String("dial postgres://app:pa#s?s@db/orders"); got != "dial postgres://app:"+Mask+"@db/orders" {
		t.Errorf("by structure: %q", got)
	}
}
