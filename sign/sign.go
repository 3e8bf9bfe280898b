// Package sign authenticates the JSON documents backproof stores next to its
// backups (manifests and verification records) with Ed25519 signatures, so
// that a reader trusts nothing a destination hands back unless a trusted key
// vouches for it.
//
// A signed document is the document with one more member:
//
//	"signature": {"alg": "ed25519", "key": "<public key>", "value": "<base64>"}
//
// The signature is over the document's canonical form without that member:
// compact JSON, object keys sorted, strings and numbers exactly as written,
// no HTML escaping. That is what `jq -cjS 'del(.signature)'` prints, so a
// document can be checked with jq and openssl alone.
//
// Keys: the private key is a PKCS#8 PEM file ("BEGIN PRIVATE KEY"), as
// `openssl genpkey -algorithm ed25519` writes; a public key is one line, the
// base64 of its DER SubjectPublicKeyInfo (the middle line of `openssl pkey
// -pubout`).
package sign

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// Alg is the only signature algorithm.
const Alg = "ed25519"

// Field is the member holding a document's signature.
const Field = "signature"

// ErrNotAuthentic means a document is unsigned, badly signed, or signed by a
// key that is not trusted.
var ErrNotAuthentic = errors.New("not authentic")

// MaxKeyFile bounds what is read of a private key file.
const MaxKeyFile = 16 << 10

// Signature is the signature member of a document.
type Signature struct {
	Alg   string `json:"alg"`
	Key   string `json:"key"`   // the signer's public key
	Value string `json:"value"` // base64 Ed25519 signature of the canonical form
}

// Generate makes a new key pair: the private key as a PEM file's content and
// the public key as one line.
func Generate() (private []byte, public string, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, "", err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), FormatPublicKey(pub), nil
}

// FormatPublicKey returns pub as one line.
func FormatPublicKey(pub ed25519.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err) // an Ed25519 key always marshals
	}
	return base64.StdEncoding.EncodeToString(der)
}

// ParsePublicKey reads a public key line.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "PRIVATE KEY") {
		return nil, errors.New("this is a private key; trusted_keys take public keys")
	}
	der, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.New("not a public key: want the one line keygen --signing prints")
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, errors.New("not a public key: want the one line keygen --signing prints")
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("a %T, not an Ed25519 public key", k)
	}
	return pub, nil
}

// Signer signs documents with a private key.
type Signer struct {
	key ed25519.PrivateKey
	pub string
}

// ParsePrivateKey reads a PEM private key file's content. Its errors never
// include the content.
func ParsePrivateKey(data []byte) (*Signer, error) {
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PEM private key (want the file keygen --signing writes)")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("more than one PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, errors.New("malformed PKCS#8 private key")
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, errors.New("not an Ed25519 private key")
	}
	return &Signer{key: priv, pub: FormatPublicKey(priv.Public().(ed25519.PublicKey))}, nil
}

// PublicKey returns the signer's public key line.
func (s *Signer) PublicKey() string { return s.pub }

// String never shows the private key.
func (s *Signer) String() string { return "signer " + s.pub }

// GoString never shows the private key.
func (s *Signer) GoString() string { return s.String() }

// Sign returns doc, a JSON object, with its signature member set. A
// signature doc already has is replaced.
func (s *Signer) Sign(doc []byte) ([]byte, error) {
	m, err := decode(doc)
	if err != nil {
		return nil, err
	}
	_, resigned := m[Field]
	delete(m, Field)
	canon, err := canonical(m)
	if err != nil {
		return nil, err
	}
	sig := Signature{Alg: Alg, Key: s.pub, Value: base64.StdEncoding.EncodeToString(ed25519.Sign(s.key, canon))}
	sigJSON, err := json.Marshal(sig)
	if err != nil {
		return nil, err
	}
	if resigned {
		m[Field] = json.RawMessage(sigJSON)
		out, err := json.MarshalIndent(m, "", "  ")
		return append(out, '\n'), err
	}
	// Keep the document as written and add the signature as its last
	// member, so that it stays readable in the order it was written.
	body := bytes.TrimRight(doc, " \t\r\n")
	body = bytes.TrimSuffix(body, []byte("}"))
	body = bytes.TrimRight(body, " \t\r\n")
	var out bytes.Buffer
	out.Write(body)
	if len(m) > 0 {
		out.WriteString(",")
	}
	out.WriteString("\n  \"" + Field + "\": ")
	out.Write(sigJSON)
	out.WriteString("\n}\n")
	if _, err := decode(out.Bytes()); err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return out.Bytes(), nil
}

// Trust is the set of public keys whose signatures are accepted.
type Trust struct {
	keys map[string]ed25519.PublicKey
}

// NewTrust parses the trusted public keys.
func NewTrust(keys []string) (*Trust, error) {
	t := &Trust{keys: map[string]ed25519.PublicKey{}}
	for i, k := range keys {
		pub, err := ParsePublicKey(k)
		if err != nil {
			return nil, fmt.Errorf("trusted key %d: %w", i+1, err)
		}
		t.keys[FormatPublicKey(pub)] = pub
	}
	return t, nil
}

// Trusts reports whether the public key line is trusted.
func (t *Trust) Trusts(key string) bool {
	_, ok := t.keys[strings.TrimSpace(key)]
	return ok
}

// Verify checks doc's signature and returns the key that signed it. Any
// failure wraps ErrNotAuthentic, and says which: unsigned, malformed,
// untrusted key or bad signature.
func (t *Trust) Verify(doc []byte) (string, error) {
	m, err := decode(doc)
	if err != nil {
		return "", err
	}
	raw, ok := m[Field]
	if !ok {
		return "", fmt.Errorf("%w: unsigned", ErrNotAuthentic)
	}
	delete(m, Field)
	var sig Signature
	b, _ := json.Marshal(raw)
	if err := json.Unmarshal(b, &sig); err != nil || sig.Alg != Alg {
		return "", fmt.Errorf("%w: malformed signature", ErrNotAuthentic)
	}
	pub, ok := t.keys[sig.Key]
	if !ok {
		return sig.Key, fmt.Errorf("%w: signed by untrusted key %s", ErrNotAuthentic, short(sig.Key))
	}
	value, err := base64.StdEncoding.DecodeString(sig.Value)
	if err != nil {
		return sig.Key, fmt.Errorf("%w: malformed signature", ErrNotAuthentic)
	}
	canon, err := canonical(m)
	if err != nil {
		return sig.Key, err
	}
	if err := ed25519.VerifyWithOptions(pub, canon, value, &ed25519.Options{Hash: crypto.Hash(0)}); err != nil {
		return sig.Key, fmt.Errorf("%w: bad signature (key %s): the document was changed after signing", ErrNotAuthentic, short(sig.Key))
	}
	return sig.Key, nil
}

// short names a public key by its tail, which is where keys differ (the head
// is the same DER prefix for every Ed25519 key).
func short(key string) string {
	if len(key) > 12 {
		return "..." + key[len(key)-12:]
	}
	return key
}

// Canonical returns the form of doc that its signature covers.
func Canonical(doc []byte) ([]byte, error) {
	m, err := decode(doc)
	if err != nil {
		return nil, err
	}
	delete(m, Field)
	return canonical(m)
}

func decode(doc []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: not a JSON object: %v", ErrNotAuthentic, err)
	}
	if m == nil {
		return nil, fmt.Errorf("%w: not a JSON object", ErrNotAuthentic)
	}
	if _, err := dec.Token(); err == nil {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrNotAuthentic)
	}
	return m, nil
}

// canonical encodes v compactly with sorted keys (encoding/json sorts map
// keys), numbers as written (json.Number) and no HTML escaping.
func canonical(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
