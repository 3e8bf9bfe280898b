package sign_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/destination/local"
	"github.com/backproof/backproof/internal/testenv"
	"github.com/backproof/backproof/sign"
)

func newKey(t *testing.T) (*sign.Signer, string, []byte) {
	t.Helper()
	priv, pub, err := sign.Generate()
	if err != nil {
		t.Fatal(err)
	}
	s, err := sign.ParsePrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if s.PublicKey() != pub {
		t.Fatalf("public key of the parsed private key %s, Generate said %s", s.PublicKey(), pub)
	}
	return s, pub, priv
}

func trust(t *testing.T, keys ...string) *sign.Trust {
	t.Helper()
	tr, err := sign.NewTrust(keys)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

const manifest = `{
  "format": 1,
  "id": "20261122T020000Z-abcdefgh",
  "target": "orders",
  "engine": "postgres",
  "start": "2026-11-22T02:00:00.123456789Z",
  "end": "2026-11-22T02:01:00Z",
  "artifacts": [{"name": "dump.pgdump.zst", "size": 1234, "sha256": "` + sha + `"}],
  "source": {"tables": [{"schema": "public", "name": "orders", "rows": 1000}], "ratio": 0.125, "note": "<&> ü"}
}
`

const sha = "0000000000000000000000000000000000000000000000000000000000000001"

func TestSignVerify(t *testing.T) {
	s, pub, _ := newKey(t)
	_, pub2, _ := newKey(t)
	signed, err := s.Sign([]byte(manifest))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(signed, []byte(strings.TrimRight(manifest, "}\n"))) {
		t.Errorf("signing rewrote the document:\n%s", signed)
	}
	// Rotation: any trusted key will do.
	if k, err := trust(t, pub2, pub).Verify(signed); err != nil || k != pub {
		t.Fatalf("Verify = %q, %v; want the signer's key", k, err)
	}
	// Signing again replaces the signature.
	again, err := s.Sign(signed)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := trust(t, pub).Verify(again); err != nil {
		t.Fatalf("re-signed: %v", err)
	}

	tampered := []struct {
		name, old, new string
		want           string
	}{
		{"edited count", `"rows": 1000`, `"rows": 999`, "bad signature"},
		{"swapped artifact", sha, strings.Repeat("f", 64), "bad signature"},
		{"edited size", `"size": 1234`, `"size": 1235`, "bad signature"},
		{"replayed under another id", `"id": "20261122T020000Z-abcdefgh"`, `"id": "20261201T020000Z-abcdefgh"`, "bad signature"},
		{"another target", `"target": "orders"`, `"target": "billing"`, "bad signature"},
		{"other times", `"end": "2026-11-22T02:01:00Z"`, `"end": "2026-11-22T02:01:01Z"`, "bad signature"},
		{"added field", `"format": 1,`, `"format": 1, "encryption": null,`, "bad signature"},
	}
	for _, tc := range tampered {
		t.Run(tc.name, func(t *testing.T) {
			doc := bytes.Replace(signed, []byte(tc.old), []byte(tc.new), 1)
			if bytes.Equal(doc, signed) {
				t.Fatal("nothing replaced")
			}
			_, err := trust(t, pub).Verify(doc)
			if !errors.Is(err, sign.ErrNotAuthentic) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Verify = %v, want not authentic: %s", err, tc.want)
			}
		})
	}

	if _, err := trust(t, pub2).Verify(signed); err == nil || !strings.Contains(err.Error(), "untrusted key") {
		t.Errorf("untrusted key: %v", err)
	}
	if _, err := trust(t, pub).Verify([]byte(manifest)); err == nil || !strings.Contains(err.Error(), "unsigned") {
		t.Errorf("unsigned: %v", err)
	}
	// Whitespace and member order are not what is signed.
	var v map[string]any
	if err := json.Unmarshal(signed, &v); err != nil {
		t.Fatal(err)
	}
	reordered, _ := json.Marshal(v)
	if _, err := trust(t, pub).Verify(reordered); err != nil {
		t.Errorf("reformatted document: %v", err)
	}
}

func TestKeysRefused(t *testing.T) {
	_, _, priv := newKey(t)
	if _, err := sign.NewTrust([]string{string(priv)}); err == nil || strings.Contains(err.Error(), string(priv[30:60])) {
		t.Errorf("private key as trusted key: %v", err)
	}
	if _, err := sign.NewTrust([]string{"age1qqqq"}); err == nil {
		t.Error("age recipient accepted as a signing key")
	}
	if _, err := sign.ParsePrivateKey([]byte("hello")); err == nil {
		t.Error("garbage accepted as a private key")
	}
	s, _, _ := newKey(t)
	for _, str := range []string{s.String(), s.GoString()} {
		if strings.Contains(str, "PRIVATE") || !strings.Contains(str, s.PublicKey()) {
			t.Errorf("String() = %q", str)
		}
	}
}

// The documented way to check a signature without backproof: jq and openssl.
func TestOpenSSLChecksSignature(t *testing.T) {
	for _, tool := range []string{"jq", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Unavailable(t, "%s not installed", tool)
		}
	}
	s, pub, _ := newKey(t)
	signed, err := s.Sign([]byte(manifest))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	doc := write("manifest.json", string(signed))
	write("pub.pem", "-----BEGIN PUBLIC KEY-----\n"+pub+"\n-----END PUBLIC KEY-----\n")
	script := `set -e
jq -r .signature.value manifest.json | base64 -d > sig
jq -cjS 'del(.signature)' manifest.json > payload
openssl pkeyutl -verify -pubin -inkey pub.pem -rawin -in payload -sigfile sig`
	cmd := exec.Command("sh", "-c", script)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "Signature Verified Successfully") {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	canon, _ := sign.Canonical(signed)
	payload, _ := os.ReadFile(filepath.Join(dir, "payload"))
	if !bytes.Equal(canon, payload) {
		t.Errorf("jq's canonical form differs:\n jq: %s\ngo: %s", payload, canon)
	}
	os.WriteFile(doc, bytes.Replace(signed, []byte(`"rows": 1000`), []byte(`"rows": 10`), 1), 0o600)
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("openssl verified an edited document:\n%s", out)
	}
}

func record(target, dest, id string, started time.Time) []byte {
	b, _ := json.Marshal(map[string]any{"format": 1, "target": target, "destination": dest, "backup_id": id,
		"outcome": "pass", "started": started})
	return b
}

func TestStore(t *testing.T) {
	ctx := context.Background()
	raw, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, pub, _ := newKey(t)
	other, _, _ := newKey(t)
	st := &sign.Store{Destination: raw, Name: "local", Policy: sign.Policy{Signer: s, Trust: trust(t, pub)}}
	id := "20261122T020000Z-abcdefgh"
	started := time.Date(2026, 11, 22, 3, 0, 0, 5e8, time.UTC)
	get := func(d interface {
		Get(context.Context, string) (io.ReadCloser, error)
	}, key string) ([]byte, error) {
		rc, err := d.Get(ctx, key)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(rc)
	}

	// Written through the store: signed, read back.
	rec := catalog.RecordName(started)
	if err := st.Put(ctx, catalog.Key("orders", id, rec), bytes.NewReader(record("orders", "local", id, started))); err != nil {
		t.Fatal(err)
	}
	if _, err := get(st, catalog.Key("orders", id, rec)); err != nil {
		t.Fatalf("own record refused: %v", err)
	}
	stored, _ := get(raw, catalog.Key("orders", id, rec))
	if !bytes.Contains(stored, []byte(`"signature"`)) {
		t.Fatalf("stored record is unsigned:\n%s", stored)
	}
	// Artifacts pass through untouched.
	if err := st.Put(ctx, catalog.Key("orders", id, "dump.pgdump.zst"), strings.NewReader("{}")); err != nil {
		t.Fatal(err)
	}
	if b, _ := get(raw, catalog.Key("orders", id, "dump.pgdump.zst")); string(b) != "{}" {
		t.Fatalf("artifact changed: %q", b)
	}

	plant := func(key string, doc []byte) {
		t.Helper()
		if err := raw.Put(ctx, key, bytes.NewReader(doc)); err != nil {
			t.Fatal(err)
		}
	}
	signedBy := func(s *sign.Signer, doc []byte) []byte {
		out, err := s.Sign(doc)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	later := started.Add(time.Hour)
	refused := []struct {
		name string
		key  string
		doc  []byte
		want string
	}{
		{"unsigned record", catalog.Key("orders", id, catalog.RecordName(later)), record("orders", "local", id, later), "unsigned"},
		{"record by an untrusted key", catalog.Key("orders", id, catalog.RecordName(later)), signedBy(other, record("orders", "local", id, later)), "untrusted key"},
		{"record of another backup", catalog.Key("orders", id, catalog.RecordName(later)), signedBy(s, record("orders", "local", "20261121T020000Z-abcdefgh", later)), "names backup"},
		{"record of another target", catalog.Key("orders", id, catalog.RecordName(later)), signedBy(s, record("billing", "local", id, later)), "names target"},
		{"record of another destination", catalog.Key("orders", id, catalog.RecordName(later)), signedBy(s, record("orders", "offsite", id, later)), "names destination"},
		{"record renamed to look newer", catalog.Key("orders", id, catalog.RecordName(later.Add(48*time.Hour))), signedBy(s, record("orders", "local", id, later)), "not at the time in its name"},
		{"unsigned manifest", catalog.Key("orders", id, catalog.ManifestName), []byte(manifest), "unsigned"},
		{"unsigned acceptance", catalog.Key("orders", id, catalog.AcceptanceName(later)), acceptance("orders", id), "unsigned"},
		{"acceptance of another backup", catalog.Key("orders", id, catalog.AcceptanceName(later)), signedBy(s, acceptance("orders", "20261121T020000Z-abcdefgh")), "copied"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			plant(tc.key, tc.doc)
			_, err := get(st, tc.key)
			if !errors.Is(err, sign.ErrNotAuthentic) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Get = %v, want not authentic: %s", err, tc.want)
			}
		})
	}

	// An acceptance written through the store is signed and read back.
	acc := catalog.Key("orders", id, catalog.AcceptanceName(started))
	if err := st.Put(ctx, acc, bytes.NewReader(acceptance("orders", id))); err != nil {
		t.Fatal(err)
	}
	if _, err := get(st, acc); err != nil {
		t.Fatalf("own acceptance refused: %v", err)
	}

	// With encryption configured, an unencrypted manifest is refused even
	// when signed.
	enc := &sign.Store{Destination: raw, Name: "local", Policy: sign.Policy{Signer: s, Trust: trust(t, pub), Encrypted: true}}
	plant(catalog.Key("orders", id, catalog.ManifestName), signedBy(s, []byte(manifest)))
	if _, err := get(st, catalog.Key("orders", id, catalog.ManifestName)); err != nil {
		t.Fatalf("signed manifest refused: %v", err)
	}
	if _, err := get(enc, catalog.Key("orders", id, catalog.ManifestName)); !errors.Is(err, sign.ErrNotAuthentic) || !strings.Contains(err.Error(), "unencrypted") {
		t.Fatalf("unencrypted manifest with encryption configured: %v", err)
	}

	// A host that only reads cannot write documents, and says why.
	ro := &sign.Store{Destination: raw, Name: "local", Policy: sign.Policy{Trust: trust(t, pub)}}
	if err := ro.Put(ctx, catalog.Key("orders", id, catalog.ManifestName), strings.NewReader(manifest)); err == nil || !strings.Contains(err.Error(), "signing.key_file") {
		t.Fatalf("unsigned write: %v", err)
	}
}

func acceptance(target, id string) []byte {
	return []byte(`{"format":1,"target":"` + target + `","backup_id":"` + id + `","by":"ops@host","at":"2026-11-22T04:00:00Z"}`)
}
