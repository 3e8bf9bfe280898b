package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/destination"
	"github.com/backproof/backproof/sign"
)

// adoptCommand signs backups written before signing was turned on (or under
// a key no longer trusted), once a person has decided they are genuine.
func (e *env) adoptCommand() *cobra.Command {
	var ids []string
	var only string
	cmd := &cobra.Command{
		Use:   "adopt TARGET --backup ID [--backup ID...] [--destination NAME]",
		Short: "Sign backups made before signing was turned on, after a person checked them",
		Long: `Sign the manifest of each named backup with signing.key_file, so that readers
accept it again. Only a manifest that is unsigned or signed by a key that is no
longer trusted is adopted; one whose signature by a trusted key no longer
matches was changed after signing and is refused. Verification records are not
re-signed: they are evidence of their own time. Run verify --backup ID after
adopting: it checks the stored bytes against the manifest and restores it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(ids) == 0 {
				return usagef("adopt needs --backup ID: name each backup a person has checked")
			}
			cfg, targets, err := e.loadTargets(args, only)
			if err != nil {
				return err
			}
			if cfg.Signing == nil {
				return usagef("%s: adopt needs signing in the config", cfg.File)
			}
			if err := checkWriter(cfg); err != nil {
				return err
			}
			policy, err := trustPolicy(cfg)
			if err != nil {
				return err
			}
			t := targets[0]
			var errs []error
			for _, n := range t.Destinations {
				if only != "" && n != only {
					continue
				}
				raw, err := openDestination(e.ctx, cfg.Destinations[n])
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", n, err))
					continue
				}
				for _, id := range ids {
					msg, err := adopt(e, raw, policy, t.Name, id)
					if err != nil {
						errs = append(errs, fmt.Errorf("%s on %s: %w", id, n, err))
						continue
					}
					fmt.Fprintf(e.stdout, "%s %s on %s: %s\n", t.Name, id, n, msg)
				}
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().StringArrayVar(&ids, "backup", nil, "backup id to adopt (repeatable)")
	cmd.Flags().StringVar(&only, "destination", "", "only this destination")
	return cmd
}

// adopt signs one backup's manifest on raw, the destination as stored.
func adopt(e *env, raw destination.Destination, policy sign.Policy, target, id string) (string, error) {
	key := catalog.Key(target, id, catalog.ManifestName)
	// The manifest must be well formed and name the backup it lies under.
	if _, err := catalog.ReadManifest(e.ctx, raw, target, id); err != nil {
		return "", err
	}
	rc, err := raw.Get(e.ctx, key)
	if err != nil {
		return "", err
	}
	doc, err := io.ReadAll(io.LimitReader(rc, 16<<20))
	rc.Close()
	if err != nil {
		return "", err
	}
	signer, why := policy.Trust.Verify(doc)
	switch {
	case why == nil:
		return "already signed by a trusted key", nil
	case policy.Trust.Trusts(signer):
		// Signed by a key we trust, and changed since: evidence, not debris.
		return "", fmt.Errorf("refusing to adopt: %w", why)
	}
	// What the store would refuse even when signed: an unencrypted backup
	// with encryption configured.
	st := &sign.Store{Destination: raw, Policy: sign.Policy{Encrypted: policy.Encrypted}}
	check, err := st.Get(e.ctx, key)
	if err != nil {
		return "", fmt.Errorf("refusing to adopt: %w", err)
	}
	check.Close()
	signed, err := policy.Signer.Sign(doc)
	if err != nil {
		return "", err
	}
	if err := raw.Put(e.ctx, key, bytes.NewReader(signed)); err != nil {
		return "", err
	}
	return fmt.Sprintf("adopted (was %s); now run verify --backup %s", strings.TrimPrefix(why.Error(), sign.ErrNotAuthentic.Error()+": "), id), nil
}
