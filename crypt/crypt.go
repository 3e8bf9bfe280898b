// Package crypt encrypts artifacts to age X25519 recipients and decrypts them
// with age identities (filippo.io/age).
//
// Writers need only the recipients (public keys). Manifests name recipients
// by fingerprint, never by key: "sha256:" and the first 16 hex digits of the
// SHA-256 of the recipient's canonical (lower-case Bech32) string. Identities
// are secrets: no error of this package quotes one.
package crypt

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"filippo.io/age"
)

// Scheme is the encryption recorded in manifests: the age v1 file format.
const Scheme = "age-encryption.org/v1"

// Suffix is appended to the name of an encrypted artifact.
const Suffix = ".age"

// Header is how every encrypted artifact begins.
const Header = "age-encryption.org/v1\n"

// ErrNoMatchingKey means no identity can decrypt a backup.
var ErrNoMatchingKey = errors.New("no matching key")

// Fingerprint returns the fingerprint of an age X25519 recipient.
func Fingerprint(recipient string) (string, error) {
	r, err := age.ParseX25519Recipient(strings.TrimSpace(recipient))
	if err != nil {
		return "", errors.New("not a valid age X25519 recipient")
	}
	return fingerprint(r.String()), nil
}

func fingerprint(canonical string) string {
	sum := sha256.Sum256([]byte(canonical))
	return "sha256:" + hex.EncodeToString(sum[:8])
}

// Recipients encrypt artifacts.
type Recipients struct {
	rs  []age.Recipient
	fps []string
}

// ParseRecipients parses age X25519 public keys (age1...). It never returns
// nil without an error: configured encryption cannot turn into none.
func ParseRecipients(keys []string) (*Recipients, error) {
	if len(keys) == 0 {
		return nil, errors.New("no recipients")
	}
	rs := &Recipients{}
	for i, k := range keys {
		r, err := age.ParseX25519Recipient(strings.TrimSpace(k))
		if err != nil {
			// age's message quotes the input, which may be a secret key pasted by mistake.
			return nil, fmt.Errorf("recipient %d: not a valid age X25519 recipient", i+1)
		}
		if fp := fingerprint(r.String()); !slices.Contains(rs.fps, fp) {
			rs.rs = append(rs.rs, r)
			rs.fps = append(rs.fps, fp)
		}
	}
	return rs, nil
}

// Fingerprints returns the recipients' fingerprints, in configured order.
func (rs *Recipients) Fingerprints() []string { return slices.Clone(rs.fps) }

// Encrypt returns a writer that encrypts to every recipient into w. Close
// writes the last chunk; without it the output is truncated and undecryptable.
func (rs *Recipients) Encrypt(w io.Writer) (io.WriteCloser, error) {
	ew, err := age.Encrypt(w, rs.rs...)
	if err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	return ew, nil
}

// Identities decrypt artifacts.
type Identities struct {
	ids []age.Identity
	fps []string // fingerprints of the identities' recipients
}

// MaxIdentityFile bounds how much of an identity file is read.
const MaxIdentityFile = 1 << 20

// ParseIdentities reads an age identity file: one AGE-SECRET-KEY-1... (or
// post-quantum AGE-SECRET-KEY-PQ-1...) per line, "#" comments and blank
// lines ignored, as age-keygen writes it. Errors name the line, never its
// content.
func ParseIdentities(r io.Reader) (*Identities, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxIdentityFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxIdentityFile {
		return nil, errors.New("larger than 1 MiB: not an age identity file")
	}
	ids := &Identities{}
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var id age.Identity
		var fp string
		switch {
		case strings.HasPrefix(line, "AGE-SECRET-KEY-PQ-1"):
			h, err := age.ParseHybridIdentity(line)
			if err != nil {
				return nil, fmt.Errorf("line %d is not a valid age identity", n)
			}
			id, fp = h, fingerprint(h.Recipient().String())
		default:
			x, err := age.ParseX25519Identity(line)
			if err != nil {
				return nil, fmt.Errorf("line %d is not a valid age identity", n)
			}
			id, fp = x, fingerprint(x.Recipient().String())
		}
		ids.ids = append(ids.ids, id)
		ids.fps = append(ids.fps, fp)
	}
	if err := sc.Err(); err != nil {
		return nil, errors.New("not an age identity file")
	}
	if len(ids.ids) == 0 {
		return nil, errors.New("no identities in the file")
	}
	return ids, nil
}

// Fingerprints returns the fingerprints of the recipients the identities
// decrypt for.
func (ids *Identities) Fingerprints() []string { return slices.Clone(ids.fps) }

// Match checks, before anything is read, that one of the identities belongs
// to one of the recipients a backup was encrypted to. An empty list (a
// manifest that names none) is not checked.
func (ids *Identities) Match(recipients []string) error {
	if len(recipients) == 0 {
		return nil
	}
	for _, fp := range ids.fps {
		if slices.Contains(recipients, fp) {
			return nil
		}
	}
	return fmt.Errorf("%w: the backup is encrypted to %s, the identity file holds keys for %s",
		ErrNoMatchingKey, strings.Join(recipients, ", "), strings.Join(ids.fps, ", "))
}

// Decrypt reads the age header from src and returns the plaintext stream.
// Every chunk is authenticated as it is read.
func (ids *Identities) Decrypt(src io.Reader) (io.Reader, error) {
	r, err := age.Decrypt(src, ids.ids...)
	if err != nil {
		if _, ok := errors.AsType[*age.NoIdentityMatchError](err); ok {
			return nil, fmt.Errorf("%w: no identity in the identity file opens this artifact (identity file holds keys for %s)",
				ErrNoMatchingKey, strings.Join(ids.fps, ", "))
		}
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	return r, nil
}

// Generate returns a new X25519 identity in age-keygen's file format, and its
// recipient.
func Generate(now time.Time) (identityFile []byte, recipient string, err error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, "", err
	}
	r := id.Recipient().String()
	file := fmt.Sprintf("# created: %s\n# public key: %s\n%s\n", now.Format(time.RFC3339), r, id.String())
	return []byte(file), r, nil
}
