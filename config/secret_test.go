package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"filippo.io/age"
	"gopkg.in/yaml.v3"
)

func TestSecretFormatting(t *testing.T) {
	s := NewSecret("hunter2")
	if s.Reveal() != "hunter2" || s.IsZero() {
		t.Fatalf("Reveal = %q, IsZero = %v", s.Reveal(), s.IsZero())
	}
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10s", "%-10v", "%T"} {
		got := fmt.Sprintf(format, s)
		if strings.Contains(got, "hunter2") || strings.Contains(got, fmt.Sprintf("%x", "hunter2")) {
			t.Errorf("Sprintf(%q) = %q leaks the secret", format, got)
		}
	}
	for _, tt := range []struct{ got, want string }{
		{s.String(), "[REDACTED]"},
		{fmt.Sprint(s), "[REDACTED]"},
		{fmt.Sprintf("%#v", s), "[REDACTED]"},
		{s.GoString(), "[REDACTED]"},
		{fmt.Sprintf("%q", s), `"[REDACTED]"`},
		{s.LogValue().String(), "[REDACTED]"},
		{Secret{}.String(), ""},
		{NewSecret("").String(), ""},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
	if !(Secret{}).IsZero() || !NewSecret("").IsZero() || (Secret{}).Reveal() != "" {
		t.Error("zero Secret is not zero")
	}
	j, err := json.Marshal(struct{ A, B Secret }{s, Secret{}})
	if err != nil || string(j) != `{"A":"[REDACTED]","B":""}` {
		t.Errorf("json = %s, %v", j, err)
	}
	yml, err := yaml.Marshal(map[string]Secret{"a": s})
	if err != nil || string(yml) != "a: '[REDACTED]'\n" {
		t.Errorf("yaml = %q, %v", yml, err)
	}
	// Even through an unexported field, where fmt cannot call methods.
	type wrapper struct{ s Secret }
	if got := fmt.Sprintf("%+v %#v", wrapper{s}, wrapper{s}); strings.Contains(got, "hunter2") {
		t.Errorf("unexported field leaks: %s", got)
	}
}

// TestSentinelNeverLeaks loads configs holding a sentinel secret in every
// secret field, triggers errors around them, and checks that the sentinel
// appears in no error, formatted value, log line or marshalled output.
func TestSentinelNeverLeaks(t *testing.T) {
	const sentinel = "S3NT1NEL-d0-not-print"
	dir := t.TempDir()
	sentinelFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(sentinelFile, []byte(sentinel+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badIdentity := filepath.Join(dir, "identity")
	if err := os.WriteFile(badIdentity, []byte("AGE-SECRET-KEY-1"+sentinel+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SENTINEL": sentinel, "DSN": "postgres://app:" + sentinel + "@db/orders"}

	valid := y(`
destinations:
  local: {type: local, path: /b}
  s3:
    type: s3
    bucket: b
    access_key_id: ${SENTINEL}
    secret_access_key: ${SENTINEL}
    session_token_file: @FILE@
targets:
  x:
    engine: postgres
    dsn: ${DSN}
    destinations: [local, s3]
`)
	invalid := []string{
		// Errors on the secret keys themselves and next to them.
		y(`
destinations:
  local:
    type: local
    path: /b
    access_key_id: ${SENTINEL}
    secret_access_key: "S3NT1NEL-d0-not-print"
  s3:
    type: s3
    bucket: b/c
    secret_access_key: ${SENTINEL}
    session_token: S3NT1NEL-d0-not-print
    endpoint: "https://u:S3NT1NEL-d0-not-print@host"
    secret_access_key_file: @FILE@
targets:
  x:
    engine: postgress
    dsn: ${DSN}
    dsn_file: @FILE@
    dsnn: ${DSN}
    destinations: [s4]
  y:
    engine: postgres
    dsn: [S3NT1NEL-d0-not-print]
    access_key_id: S3NT1NEL-d0-not-print
    destinations: [local]
  z:
    engine: postgres
    dsn: {a: S3NT1NEL-d0-not-print}
    destinations: [local]
`),
		"encryption:\n  recipients: [AGE-SECRET-KEY-1S3NT1NEL-d0-not-print, age1S3NT1NEL-d0-not-print]\n  identity_file: @IDENTITY@\n" + okTail,
		"targets:\n  x:\n    dsn: \"S3NT1NEL-d0-not-print${\"\n",
		"targets:\n  x:\n    dsn: ${S3NT1NEL-d0-not-print:-S3NT1NEL-d0-not-print}\n",
		"targets:\n  x:\n    dsn: ${DSN-postgres://u:S3NT1NEL-d0-not-print@h}\n",
		"targets: {x: {dsn: 'S3NT1NEL-d0-not-print' \n",
	}
	replace := strings.NewReplacer("@FILE@", sentinelFile, "@IDENTITY@", badIdentity).Replace

	for i, in := range invalid {
		_, err := Parse([]byte(replace(in)), testFile, envFunc(env))
		if err == nil {
			t.Fatalf("invalid[%d] parsed", i)
		}
		if strings.Contains(err.Error(), sentinel) {
			t.Errorf("invalid[%d]: error leaks the secret:\n%v", i, err)
		}
		if strings.Contains(fmt.Sprintf("%+v %#v", err, err), sentinel) {
			t.Errorf("invalid[%d]: formatted error leaks the secret", i)
		}
	}

	c, err := Parse([]byte(replace(valid)), testFile, envFunc(env))
	if err != nil {
		t.Fatal(err)
	}
	x, s3 := c.Targets["x"], c.Destinations["s3"]
	if x.DSN.Reveal() != env["DSN"] || s3.SessionToken.Reveal() != sentinel {
		t.Fatal("secrets not loaded")
	}
	var out bytes.Buffer
	fmt.Fprintf(&out, "%v %+v %#v\n", x, x, x)
	fmt.Fprintf(&out, "%v %+v %#v\n", *x, *x, *x)
	fmt.Fprintf(&out, "%v %+v %#v\n", s3, *s3, *s3)
	fmt.Fprintf(&out, "%v %+v %#v\n", c, *c, c.Destinations)
	for _, h := range []slog.Handler{slog.NewTextHandler(&out, nil), slog.NewJSONHandler(&out, nil)} {
		slog.New(h).Info("loaded", "target", x, "dest", s3, "dsn", x.DSN, "t", *x, "config", c, slog.Group("g", "d", *s3))
	}
	for _, v := range []any{c, x, s3, *x} {
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		out.Write(j)
		yml, err := yaml.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		out.Write(yml)
	}
	if strings.Contains(out.String(), sentinel) {
		t.Errorf("output leaks the secret:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "[REDACTED]") {
		t.Errorf("output shows no redaction marker:\n%s", out.String())
	}
}

func TestSecrets(t *testing.T) {
	dsn := "postgres://app:p%40ss@db/orders"
	c := mustParse(t, y(`
destinations:
  local: {type: local, path: /b}
  a: {type: s3, bucket: b, access_key_id: AKID, secret_access_key: longer-secret-key}
  b: {type: s3, bucket: b, access_key_id: AKID, secret_access_key: sk2, session_token: tok}
targets:
  x: {engine: postgres, dsn: "`+dsn+`", destinations: [local]}
  y: {engine: mysql, dsn: "u:mypw@tcp(db:3306)/app", destinations: [local]}
`), nil)
	got := c.Secrets()
	want := []string{dsn, "u:mypw@tcp(db:3306)/app", "longer-secret-key", "p%40ss", "AKID", "p@ss", "mypw", "sk2", "tok"}
	if !slices.Equal(got, want) {
		t.Errorf("Secrets() = %q\nwant %q", got, want)
	}
	for i := 1; i < len(got); i++ {
		if len(got[i]) > len(got[i-1]) {
			t.Errorf("not longest first: %q", got)
		}
	}
}

func TestDSNPasswords(t *testing.T) {
	for _, tt := range []struct {
		dsn  string
		want []string
	}{
		{"postgres://user:pw@host:5432/db?sslmode=disable", []string{"pw"}},
		{"postgres://user@host/db", nil},
		{"postgres://host/db?user=u&password=qp&sslmode=require", []string{"qp"}},
		{"mongodb://u:p%2Fw@h1:27017,h2:27017/db?authSource=admin", []string{"p%2Fw", "p/w"}},
		{"redis://:redispw@cache:6379/0", []string{"redispw"}},
		{"rediss://default:pw@cache:6380", []string{"pw"}},
		{"u:mysqlpw@tcp(db:3306)/app?parseTime=true", []string{"mysqlpw"}},
		{"u:my@pw@tcp(db:3306)/app", []string{"my@pw"}},
		{"host=db user=app password=kvpw dbname=x", []string{"kvpw"}},
		{"host=db password='quoted pw\\'s' dbname=x", []string{"quoted pw's"}},
		{"password = spaced host=db", []string{"spaced"}},
		{"host=db passwordfile=/x sslpassword=y", nil},
		{"host=db dbname=x", nil},
		{"", nil},
	} {
		if got := DSNPasswords(tt.dsn); !slices.Equal(got, tt.want) {
			t.Errorf("DSNPasswords(%q) = %q, want %q", tt.dsn, got, tt.want)
		}
	}
}

// TestIdentityIsSecret: the identity file's keys are loaded once, hidden
// from every way of printing the config, and handed to the redactor.
func TestIdentityIsSecret(t *testing.T) {
	dir := t.TempDir()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "backproof.key")
	if err := os.WriteFile(key, []byte("# public key: "+id.Recipient().String()+"\n"+id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := mustParse(t, "encryption: {recipients: ["+id.Recipient().String()+"], identity_file: "+key+"}\n"+okTail, nil)
	if !strings.Contains(c.Encryption.Identity.Reveal(), id.String()) {
		t.Fatal("identity not loaded")
	}
	if got := c.Secrets(); !slices.Contains(got, id.String()) || slices.Contains(got, "# public key: "+id.Recipient().String()) {
		t.Errorf("Secrets() = %q, want the key line and no comment", got)
	}
	var out bytes.Buffer
	fmt.Fprintf(&out, "%v %+v %#v %v", c, *c, c.Encryption, *c.Encryption)
	slog.New(slog.NewJSONHandler(&out, nil)).Info("x", "config", c, "encryption", c.Encryption)
	j, _ := json.Marshal(c)
	out.Write(j)
	yml, _ := yaml.Marshal(c)
	out.Write(yml)
	if strings.Contains(out.String(), id.String()) || strings.Contains(strings.ToLower(out.String()), strings.ToLower(id.String()[15:])) {
		t.Errorf("the identity leaks:\n%s", out.String())
	}
	// Validating again after a change reads the file again.
	c.Encryption.IdentityFile = ""
	if err := c.Validate(); err != nil || !c.Encryption.Identity.IsZero() {
		t.Errorf("without identity_file: %v, identity loaded %v", err, !c.Encryption.Identity.IsZero())
	}
}
