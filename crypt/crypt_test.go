package crypt

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
)

func newIdentity(t *testing.T) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestFingerprint(t *testing.T) {
	const r = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
	sum := sha256.Sum256([]byte(r))
	want := "sha256:" + hex.EncodeToString(sum[:])[:16]
	for _, in := range []string{r, "  " + r + "\n"} {
		got, err := Fingerprint(in)
		if err != nil || got != want {
			t.Errorf("Fingerprint(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	other, _ := Fingerprint(newIdentity(t).Recipient().String())
	if other == want || len(other) != len(want) {
		t.Errorf("another recipient's fingerprint %q", other)
	}
	const secret = "AGE-SECRET-KEY-1SNTL9F3C2B7E"
	for _, in := range []string{"", "age1nope", secret} {
		if _, err := Fingerprint(in); err == nil || strings.Contains(err.Error(), "SNTL") {
			t.Errorf("Fingerprint(%q): err = %v", in, err)
		}
	}
}

func TestParseRecipients(t *testing.T) {
	a, b := newIdentity(t).Recipient().String(), newIdentity(t).Recipient().String()
	rs, err := ParseRecipients([]string{a, b, " " + a})
	if err != nil {
		t.Fatal(err)
	}
	fa, _ := Fingerprint(a)
	fb, _ := Fingerprint(b)
	if got := rs.Fingerprints(); len(got) != 2 || got[0] != fa || got[1] != fb {
		t.Errorf("fingerprints %q, want [%s %s] (duplicates folded)", got, fa, fb)
	}
	for _, keys := range [][]string{nil, {a, "AGE-SECRET-KEY-1SNTL9F3C2B7E"}, {"age1SNTL9F3C2B7E"}} {
		rs, err := ParseRecipients(keys)
		if err == nil || rs != nil {
			t.Errorf("ParseRecipients(%q) = %v, %v; want an error", keys, rs, err)
		} else if strings.Contains(err.Error(), "SNTL") {
			t.Errorf("error quotes the key: %v", err)
		}
	}
}

func TestParseIdentities(t *testing.T) {
	id := newIdentity(t)
	pq, err := age.GenerateHybridIdentity()
	if err != nil {
		t.Fatal(err)
	}
	file := "# created: now\n# public key: " + id.Recipient().String() + "\n\n" + id.String() + "\n" + pq.String() + "\n"
	ids, err := ParseIdentities(strings.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	fp, _ := Fingerprint(id.Recipient().String())
	if got := ids.Fingerprints(); len(got) != 2 || got[0] != fp {
		t.Errorf("fingerprints %q, want %s first", got, fp)
	}

	const sentinel = "SNTL9F3C2B7E"
	for in, want := range map[string]string{
		"":                   "no identities",
		"# only a comment\n": "no identities",
		id.String() + "\nAGE-SECRET-KEY-1" + sentinel + "\n": "line 2 is not a valid age identity",
		"age1" + sentinel + "\n":                             "line 1 is not a valid age identity",
		id.String()[:40] + sentinel:                          "line 1 is not a valid age identity",
		strings.Repeat("#", MaxIdentityFile+1):               "larger than 1 MiB",
	} {
		_, err := ParseIdentities(strings.NewReader(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseIdentities(%.40q): err = %v, want %q", in, err, want)
		} else if strings.Contains(err.Error(), sentinel) || strings.Contains(err.Error(), id.String()) {
			t.Errorf("error quotes the file: %v", err)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	alice, bob, eve := newIdentity(t), newIdentity(t), newIdentity(t)
	rs, err := ParseRecipients([]string{alice.Recipient().String(), bob.Recipient().String()})
	if err != nil {
		t.Fatal(err)
	}
	plain := bytes.Repeat([]byte("PGDMP rows "), 20000) // several 64 KiB chunks
	var stored bytes.Buffer
	w, err := rs.Encrypt(&stored)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(stored.Bytes(), []byte(Header)) || bytes.Contains(stored.Bytes(), []byte("PGDMP")) {
		t.Fatalf("stored bytes are not an age file: %.40q", stored.Bytes())
	}

	parse := func(id *age.X25519Identity) *Identities {
		ids, err := ParseIdentities(strings.NewReader(id.String()))
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	for name, id := range map[string]*age.X25519Identity{"alice": alice, "bob": bob} {
		ids := parse(id)
		if err := ids.Match(rs.Fingerprints()); err != nil {
			t.Errorf("%s: Match: %v", name, err)
		}
		r, err := ids.Decrypt(bytes.NewReader(stored.Bytes()))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, plain) {
			t.Errorf("%s: decrypted %d bytes, err %v", name, len(got), err)
		}
	}

	ids := parse(eve)
	err = ids.Match(rs.Fingerprints())
	if !errors.Is(err, ErrNoMatchingKey) || !strings.Contains(err.Error(), rs.Fingerprints()[0]) || !strings.Contains(err.Error(), ids.Fingerprints()[0]) {
		t.Errorf("Match with the wrong key: %v", err)
	}
	if _, err := ids.Decrypt(bytes.NewReader(stored.Bytes())); !errors.Is(err, ErrNoMatchingKey) || !strings.Contains(err.Error(), "no matching key") {
		t.Errorf("Decrypt with the wrong key: %v", err)
	}
	if err := ids.Match(nil); err != nil {
		t.Errorf("Match of a manifest naming no recipient: %v", err)
	}
}

func TestGenerate(t *testing.T) {
	file, r, err := Generate(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(file), "# created: 2026-01-02T03:04:05Z\n# public key: "+r+"\nAGE-SECRET-KEY-1") {
		t.Errorf("not age-keygen's format:\n%s", file)
	}
	ids, err := ParseIdentities(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	fp, err := Fingerprint(r)
	if err != nil || ids.Match([]string{fp}) != nil {
		t.Errorf("the identity does not belong to the recipient %s: %v", r, err)
	}
}

// After a rotation, one identity file with the new and the retired key reads
// backups written to either recipient.
func TestRotation(t *testing.T) {
	old, cur := newIdentity(t), newIdentity(t)
	seal := func(id *age.X25519Identity) ([]byte, []string) {
		rs, err := ParseRecipients([]string{id.Recipient().String()})
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		w, _ := rs.Encrypt(&b)
		w.Write([]byte("rows of " + id.Recipient().String()))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return b.Bytes(), rs.Fingerprints()
	}
	ids, err := ParseIdentities(strings.NewReader("# new\n" + cur.String() + "\n# retired\n" + old.String() + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []*age.X25519Identity{old, cur} {
		stored, fps := seal(id)
		if err := ids.Match(fps); err != nil {
			t.Errorf("Match: %v", err)
		}
		r, err := ids.Decrypt(bytes.NewReader(stored))
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := io.ReadAll(r); string(got) != "rows of "+id.Recipient().String() {
			t.Errorf("decrypted %q", got)
		}
	}
	// The new key alone cannot read the old backups.
	only, _ := ParseIdentities(strings.NewReader(cur.String()))
	if _, fps := seal(old); !errors.Is(only.Match(fps), ErrNoMatchingKey) {
		t.Error("the new key alone matched a backup written to the retired one")
	}
}
