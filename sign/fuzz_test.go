package sign

import (
	"bytes"
	"testing"
)

// Canonical and Verify read documents storage hands back: any input gives a
// result or an error, never a panic; the canonical form is a fixed point; and
// no document is accepted unless the trusted key signed it.
func FuzzVerify(f *testing.F) {
	priv, pub, err := Generate()
	if err != nil {
		f.Fatal(err)
	}
	s, err := ParsePrivateKey(priv)
	if err != nil {
		f.Fatal(err)
	}
	trust, err := NewTrust([]string{pub})
	if err != nil {
		f.Fatal(err)
	}
	signed, err := s.Sign([]byte(`{"id":"20261122T020000Z-abcdefgh","rows":[1,2.5e3,"x"]}`))
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{string(signed), `{}`, `{"signature":{"alg":"ed25519","key":"` + pub + `","value":"AAAA"}}`, `[1,2]`, `{"a":"\u00e9\ud800"}`, ``} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		if c, err := Canonical(doc); err == nil {
			if again, err := Canonical(c); err != nil || !bytes.Equal(again, c) {
				t.Fatalf("canonical form is not a fixed point: %q -> %q (%v)", c, again, err)
			}
		}
		if _, err := trust.Verify(doc); err == nil && !bytes.Equal(doc, signed) {
			// Only a document the key signed verifies; the fuzzer cannot sign.
			if c1, _ := Canonical(doc); !bytes.Equal(c1, mustCanonical(t, signed)) {
				t.Fatalf("accepted a document the key never signed: %q", doc)
			}
		}
	})
}

func mustCanonical(t *testing.T, doc []byte) []byte {
	c, err := Canonical(doc)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
