package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/backproof/backproof/config"
	"github.com/backproof/backproof/crypt"
	"github.com/backproof/backproof/sign"
)

// recipients returns what backups are encrypted to: nil when the config
// has no encryption. A config that asks for encryption never gets nil.
func recipients(cfg *config.Config) (*crypt.Recipients, error) {
	if cfg.Encryption == nil {
		return nil, nil
	}
	rs, err := crypt.ParseRecipients(cfg.Encryption.Recipients)
	if err != nil {
		return nil, usagef("%s: encryption.recipients: %v; refusing to write unencrypted backups", cfg.File, err)
	}
	return rs, nil
}

// checkWriter refuses, before anything is dumped, to back up with signing
// configured and no key to sign with: every manifest would be refused.
func checkWriter(cfg *config.Config) error {
	if s := cfg.Signing; s != nil && s.KeyFile == "" {
		return usagef("%s: signing.key_file is not set: this host can read signed backups but not write them", cfg.File)
	}
	return nil
}

// identities returns what decrypts backups: nil when the config names no
// identity file, which is only an error once an encrypted backup is read.
func identities(cfg *config.Config) (*crypt.Identities, error) {
	if cfg.Encryption == nil || cfg.Encryption.IdentityFile == "" {
		return nil, nil
	}
	ids, err := crypt.ParseIdentities(strings.NewReader(cfg.Encryption.Identity.Reveal()))
	if err != nil {
		return nil, usagef("%s: encryption.identity_file: %s: %v", cfg.File, cfg.Encryption.IdentityFile, err)
	}
	return ids, nil
}

func (e *env) keygenCommand() *cobra.Command {
	var out string
	var signing bool
	cmd := &cobra.Command{
		Use:   "keygen [--signing] [-o FILE]",
		Short: "Generate an age key pair for encryption.recipients and encryption.identity_file",
		Long: `Generate an age X25519 key pair. With -o, the identity (secret key) is written
to FILE, readable by its owner only, and the recipient (public key) is printed
on stdout; an existing FILE is never overwritten. Without -o, the identity is
printed on stdout and the recipient on stderr, as age-keygen does.

Put the recipient in encryption.recipients of every config that writes
backups, and the identity file where verify and restore run
(encryption.identity_file). The file is age-keygen's format: age -d -i FILE
decrypts an artifact without backproof.

With --signing, an Ed25519 key pair for signing instead: the private key
(PKCS#8 PEM, as openssl genpkey -algorithm ed25519 writes) goes to FILE
(default backproof-signing.key; never printed), and the public key is printed on stdout as one line
for signing.trusted_keys.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if signing {
				return e.keygenSigning(out)
			}
			id, r, err := crypt.Generate(time.Now().UTC())
			if err != nil {
				return err
			}
			fp, err := crypt.Fingerprint(r)
			if err != nil {
				return err
			}
			if out == "" {
				if _, err := e.stdout.Write(id); err != nil {
					return err
				}
				fmt.Fprintf(e.stderr, "Public key: %s\n", r)
				return nil
			}
			if err := writeIdentity(out, id); err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, r)
			fmt.Fprintf(e.stderr, "wrote identity %s (recipient fingerprint %s); without it, nothing encrypted to %s can be restored: keep a copy apart from the backups\n", out, fp, r)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the identity to this file (mode 0600; never overwritten)")
	cmd.Flags().BoolVar(&signing, "signing", false, "an Ed25519 key pair for signing instead of an age pair")
	return cmd
}

// DefaultSigningKeyFile is where keygen --signing writes without -o.
const DefaultSigningKeyFile = "backproof-signing.key"

// keygenSigning writes a new signing key to out and prints its public key.
// The private key is never printed: it goes to a file or nowhere.
func (e *env) keygenSigning(out string) error {
	if out == "" {
		out = DefaultSigningKeyFile
	}
	priv, pub, err := sign.Generate()
	if err != nil {
		return err
	}
	if err := writeIdentity(out, priv); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, pub)
	fmt.Fprintf(e.stderr, "wrote signing key %s; put the public key above in signing.trusted_keys of every config, and the file in signing.key_file where backup and verify run\n", out)
	return nil
}

// writeIdentity creates name with mode 0600 and writes id to it; an existing
// file is left alone.
func writeIdentity(name string, id []byte) (err error) {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s already exists: refusing to overwrite an identity", name)
	}
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(name)
		}
	}()
	if _, err := f.Write(id); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}
