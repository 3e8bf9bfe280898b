package cli

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/config"
	"github.com/backproof/backproof/continuity"
	"github.com/backproof/backproof/destination"
)

func (e *env) acceptCommand() *cobra.Command {
	var backupID, reason string
	cmd := &cobra.Command{
		Use:   "accept TARGET --backup ID [--reason TEXT]",
		Short: "Accept a backup that failed continuity as the new baseline",
		Long: `Record, next to the backup on every destination of TARGET that holds it, that
a person accepted its state (a table emptied on purpose, an index dropped by a
migration) as the new continuity baseline: who (user@host), when and why.
Later backups are then compared with it, and the backup itself passes the
continuity step when verified again.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if backupID == "" {
				return usagef("--backup ID is required: accept names one backup")
			}
			if _, err := catalog.IDTime(backupID); err != nil {
				return usagef("--backup: %v", err)
			}
			cfg, targets, err := e.loadTargets(args, "")
			if err != nil {
				return err
			}
			t := targets[0]
			a := &catalog.Acceptance{Format: catalog.AcceptanceFormat, Target: t.Name, BackupID: backupID,
				By: who(), At: time.Now().UTC(), Reason: strings.TrimSpace(reason)}
			var on []string
			var errs []error
			for _, d := range openDestinations(e.ctx, cfg, t.Destinations) {
				// One manifest, read whole: the backup must be committed and valid here.
				if _, err := catalog.ReadManifest(e.ctx, d, t.Name, backupID); err != nil {
					if !errors.Is(err, destination.ErrNotFound) && !errors.Is(err, catalog.ErrInvalid) {
						errs = append(errs, fmt.Errorf("destination %s: %w", d.Name, err))
					}
					continue
				}
				if err := catalog.WriteAcceptance(e.ctx, d, a); err != nil {
					errs = append(errs, fmt.Errorf("destination %s: %w", d.Name, err))
					continue
				}
				on = append(on, d.Name)
			}
			if len(on) > 0 {
				fmt.Fprintf(e.stdout, "accepted %s backup %s as the continuity baseline on %s (by %s at %s%s)\n",
					t.Name, backupID, strings.Join(on, ", "), a.By, a.At.Format(time.RFC3339), reasonSuffix(a.Reason))
			} else if len(errs) == 0 {
				errs = append(errs, fmt.Errorf("backup %s of %s is on none of its destinations (%s)", backupID, t.Name, strings.Join(t.Destinations, ", ")))
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().StringVar(&backupID, "backup", "", "the backup to accept (required)")
	cmd.Flags().StringVar(&reason, "reason", "", "why its changes are legitimate, recorded with the acceptance")
	return cmd
}

func reasonSuffix(r string) string {
	if r == "" {
		return ""
	}
	return ": " + r
}

// who names the person accepting: user@host.
func who() string {
	name := "unknown"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		name += "@" + h
	}
	return name
}

// continuityPolicy converts a target's settings; nil when disabled.
func continuityPolicy(t *config.Target) *continuity.Policy {
	p := t.ContinuityPolicy()
	if !p.Enabled {
		return nil
	}
	return &continuity.Policy{MaxDrop: p.MaxDrop, MinRows: p.MinRows, Ignore: p.Ignore,
		MissingIsEmpty: t.IsRedis()}
}
