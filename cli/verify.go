package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/backproof/backproof/config"
	"github.com/backproof/backproof/destination"
	"github.com/backproof/backproof/sandbox"
	"github.com/backproof/backproof/sandbox/docker"
	"github.com/backproof/backproof/sandbox/kubernetes"
	"github.com/backproof/backproof/verify"
)

func (e *env) verifyCommand() *cobra.Command {
	var asJSON bool
	var only, backupID string
	cmd := &cobra.Command{
		Use:   "verify [TARGET...]",
		Short: "Restore backups into throwaway containers and run the checks",
		Long: `Restore the latest backup of each target (or --backup ID) from each of its
destinations in turn (or --destination NAME) into a throwaway container, and
run the built-in and configured checks. Exit 0: every backup passed; 3: a
backup proved bad; 1: a verification could not run.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, targets, err := e.loadTargets(args, only)
			if err != nil {
				return err
			}
			if backupID != "" && len(targets) != 1 {
				return usagef("--backup needs exactly one target")
			}
			for _, t := range targets {
				if only != "" && !slices.Contains(t.Destinations, only) {
					return usagef("target %s does not use destination %s", t.Name, only)
				}
			}
			v, err := e.newVerifier(cfg)
			if err != nil {
				return err
			}
			defer v.close()
			var records []*verify.Record
			for _, t := range targets {
				for _, d := range openDestinations(e.ctx, cfg, t.Destinations) {
					if only != "" && d.Name != only {
						continue
					}
					if e.ctx.Err() != nil {
						break
					}
					records = append(records, v.run(e.ctx, t, d.Name, d.Destination, backupID))
				}
			}
			if asJSON {
				if err := e.writeJSON(struct {
					Verifications []*verify.Record `json:"verifications"`
				}{records}); err != nil {
					return err
				}
			} else {
				e.printVerifications(records)
			}
			return verdict(records)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON document on stdout")
	cmd.Flags().StringVar(&only, "destination", "", "verify the copy on this destination only")
	cmd.Flags().StringVar(&backupID, "backup", "", "verify this backup instead of the latest")
	return cmd
}

// verifier wires a verify.Verifier to the config and a sandbox provider.
type verifier struct {
	*verify.Verifier
	docker *docker.Docker
	cfg    *config.Config
	e      *env
}

func (e *env) newVerifier(cfg *config.Config) (*verifier, error) {
	ids, err := identities(cfg)
	if err != nil {
		return nil, err
	}
	v := &verifier{cfg: cfg, e: e, Verifier: &verify.Verifier{
		Log:     e.log,
		Now:     time.Now,
		Version: e.build.Version,
		Images:  cfg.Sandbox.Images,
		Memory:  int64(cfg.Sandbox.Memory),
		CPUs:    cfg.Sandbox.CPUs,
		Timeout: cfg.Sandbox.Timeout,
		Redact:  e.redactor.String,

		Identities: ids,
	}}
	if cfg.Sandbox.Driver == config.DriverKubernetes {
		k := cfg.Sandbox.Kubernetes
		p, err := kubernetes.New(e.ctx, e.log, kubernetes.Options{
			Namespace: k.Namespace, Kubeconfig: k.Kubeconfig, Access: k.Access,
			Disk: int64(k.Disk), ClientLabels: k.ClientLabels,
		})
		if err != nil {
			v.Sandbox = unavailable{err} // every verification reports it as an error
		} else {
			v.Sandbox = p
		}
		return v, nil
	}
	d, err := docker.New(e.ctx, e.log)
	if err != nil {
		// Every verification reports this as an error; none can run.
		v.Sandbox = unavailable{err}
	} else {
		v.docker, v.Sandbox = d, d
	}
	return v, nil
}

func (v *verifier) close() {
	if v.docker != nil {
		v.docker.Close()
	}
}

func (v *verifier) run(ctx context.Context, t *config.Target, destName string, d destination.Destination, backupID string) *verify.Record {
	return v.runPick(ctx, t, destName, d, backupID, verify.Latest)
}

func (v *verifier) runPick(ctx context.Context, t *config.Target, destName string, d destination.Destination, backupID string, pick verify.Picker) *verify.Record {
	eng, err := newEngine(t, v.e.log.With("target", t.Name))
	if err != nil {
		panic(err) // loadConfig refused engines this build lacks and DSNs they cannot parse
	}
	req := verify.Request{
		Target:      t.Name,
		Engine:      t.Engine,
		Words:       words(t.Engine),
		Prover:      eng,
		Destination: destName,
		Store:       d,
		BackupID:    backupID,
		Pick:        pick,
		Continuity:  continuityPolicy(t),
	}
	if t.Verify != nil {
		req.Checks = t.Verify.Checks
		req.Integrity = t.Verify.Amcheck
		req.Tolerance = t.Verify.KeyTolerance
	}
	return v.Run(ctx, req)
}

// unavailable is a sandbox provider that could not be set up.
type unavailable struct{ err error }

func (u unavailable) Start(context.Context, sandbox.Spec) (sandbox.Instance, error) {
	return nil, u.err
}

// verdict turns records into the command's result: a bad backup outranks a
// verification that could not run.
func verdict(records []*verify.Record) error {
	var bad, failed []error
	for _, r := range records {
		where := fmt.Sprintf("%s on %s", r.Target, r.Destination)
		if r.BackupID != "" {
			where = fmt.Sprintf("%s %s on %s", r.Target, r.BackupID, r.Destination)
		}
		switch r.Outcome {
		case verify.Fail:
			bad = append(bad, fmt.Errorf("%s: %s", where, r.Reason))
		case verify.Error:
			failed = append(failed, fmt.Errorf("could not verify %s: %s", where, r.Reason))
		case verify.Pass:
			if r.StoreError != "" {
				failed = append(failed, fmt.Errorf("%s passed, but its record could not be stored: %s", where, r.StoreError))
			}
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %w", errBadBackup, errors.Join(append(bad, failed...)...))
	}
	return errors.Join(failed...)
}

func (e *env) printVerifications(records []*verify.Record) {
	for _, r := range records {
		id := r.BackupID
		if id == "" {
			id = "-"
		}
		line := fmt.Sprintf("%s %s on %s: %s", r.Target, id, r.Destination, strings.ToUpper(string(r.Outcome)))
		if r.RestoreSeconds > 0 {
			line += fmt.Sprintf(" (restore %s, total %s)", seconds(r.RestoreSeconds), seconds(r.DurationSeconds))
		}
		fmt.Fprintln(e.stdout, line)
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		for _, c := range r.Checks {
			detail := c.Observed
			if c.Message != "" {
				detail = c.Message
				switch {
				case c.Observed != "" && c.Outcome == verify.Pass:
					detail = c.Observed + "; " + c.Message // a note next to what passed
				case c.Observed != "":
					detail += " (observed " + c.Observed + ")"
				}
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", c.Outcome, c.Name, e.redactor.String(detail))
		}
		tw.Flush()
	}
}

func seconds(s float64) string {
	return (time.Duration(s * float64(time.Second))).Round(10 * time.Millisecond).String()
}
