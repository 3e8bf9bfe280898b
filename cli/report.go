package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/config"
	"github.com/backproof/backproof/report"
	"github.com/backproof/backproof/sign"
	"github.com/backproof/backproof/verify"
)

func (e *env) reportCommand() *cobra.Command {
	var since, format string
	cmd := &cobra.Command{
		Use:   "report [TARGET...]",
		Short: "Audit evidence: every verification in a period, its verdict, RTO, RPO and receipt",
		Long: `Print the evidence for a period: per target, every verification with its
verdict, restore time (RTO), the backup's age when verified (RPO), the
destination, and whether its record is an authentic receipt (signed by one of
signing.trusted_keys and lying where it says it belongs). Records are read as
stored, so refused ones show up too, marked NOT authentic.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			window, err := config.ParseDuration(since)
			if err != nil || window <= 0 {
				return usagef("--since: %q is not a positive duration (e.g. 90d, 36h)", since)
			}
			if !strings.Contains(" "+strings.Join(report.Formats, " ")+" ", " "+format+" ") {
				return usagef("--format: %q (want %s)", format, strings.Join(report.Formats, ", "))
			}
			cfg, targets, err := e.loadTargets(args, "")
			if err != nil {
				return err
			}
			policy, err := trustPolicy(cfg)
			if err != nil {
				return err
			}
			now := time.Now()
			names := make([]string, 0, len(targets))
			sources := map[string][]report.Source{}
			for _, t := range targets {
				names = append(names, t.Name)
				for _, n := range t.Destinations {
					// As stored: the report judges each record itself.
					d, err := openDestination(e.ctx, cfg.Destinations[n])
					if err != nil {
						d = broken{err}
					}
					sources[t.Name] = append(sources[t.Name], report.Source{Name: n, Store: d})
				}
			}
			r, err := report.Build(e.ctx, names, sources, report.Options{Since: now.Add(-window), Now: now, Trust: policy.Trust})
			if err != nil {
				return err
			}
			var errs []error
			for i := range r.Targets {
				for j, msg := range r.Targets[i].Errors {
					r.Targets[i].Errors[j] = e.redactor.String(msg)
					errs = append(errs, fmt.Errorf("%s: %s", r.Targets[i].Name, r.Targets[i].Errors[j]))
				}
			}
			if err := report.Render(e.stdout, r, format); err != nil {
				return err
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().StringVar(&since, "since", "90d", "the period covered, back from now")
	cmd.Flags().StringVar(&format, "format", "md", "md, html or json")
	return cmd
}

func (e *env) receiptCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "receipt",
		Short: "Check signed verification records (receipts)",
	}
	var keys []string
	var asJSON bool
	verifyCmd := &cobra.Command{
		Use:   "verify FILE --key PUBLIC_KEY",
		Short: "Check a signed verification record offline, with nothing but the public key",
		Long: `Check that FILE, a verification record (verify-*.json) copied from a
destination, is signed by one of the given public keys and unchanged since.
--key takes the public key line keygen --signing printed, or a file holding it
(that line, or a PEM "PUBLIC KEY" file); repeat it for several keys. Exit 0:
authentic; 3: not authentic; 2: usage.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(keys) == 0 {
				return usagef("receipt verify needs --key PUBLIC_KEY")
			}
			var lines []string
			for _, k := range keys {
				line, err := publicKeyArg(k)
				if err != nil {
					return usagef("--key %s: %v", k, err)
				}
				lines = append(lines, line)
			}
			trust, err := sign.NewTrust(lines)
			if err != nil {
				return usagef("--key: %v", err)
			}
			doc, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			key, err := trust.Verify(doc)
			var rec verify.Record
			if err == nil {
				if jerr := json.Unmarshal(doc, &rec); jerr != nil || rec.Target == "" || rec.BackupID == "" || rec.Outcome == "" {
					err = fmt.Errorf("%w: signed, but not a verification record", sign.ErrNotAuthentic)
				}
			}
			if base := filepath.Base(args[0]); err == nil {
				if _, nerr := catalog.RecordTime(base); nerr == nil {
					err = sign.CheckRecordPlace(doc, "", rec.Target, rec.BackupID, base)
				}
			}
			if asJSON {
				out := struct {
					File      string         `json:"file"`
					Authentic bool           `json:"authentic"`
					Problem   string         `json:"problem,omitempty"`
					SignedBy  string         `json:"signed_by,omitempty"`
					Record    *verify.Record `json:"record,omitempty"`
				}{File: args[0], Authentic: err == nil}
				if err != nil {
					out.Problem = err.Error()
				} else {
					out.SignedBy, out.Record = key, &rec
				}
				if werr := e.writeJSON(out); werr != nil {
					return werr
				}
			}
			if err != nil {
				return provedBad{fmt.Errorf("%s: %w", args[0], err)}
			}
			if !asJSON {
				fmt.Fprintf(e.stdout, "authentic: signed by %s\n", key)
				fmt.Fprintf(e.stdout, "verification of %s backup %s on %s: %s", rec.Target, rec.BackupID, rec.Destination, rec.Outcome)
				if rec.Reason != "" {
					fmt.Fprintf(e.stdout, " (%s)", rec.Reason)
				}
				fmt.Fprintf(e.stdout, "\nstarted %s, ended %s, restore %.3fs\n",
					rec.Started.UTC().Format(time.RFC3339), rec.Ended.UTC().Format(time.RFC3339), rec.RestoreSeconds)
			}
			return nil
		},
	}
	verifyCmd.Flags().StringArrayVar(&keys, "key", nil, "trusted public key, or a file holding it (repeatable)")
	verifyCmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON document on stdout")
	cmd.AddCommand(verifyCmd)
	return cmd
}

// publicKeyArg reads a --key value: the key line itself, or a file holding
// it or a PEM public key.
func publicKeyArg(s string) (string, error) {
	if _, err := sign.ParsePublicKey(s); err == nil {
		return s, nil
	}
	data, err := os.ReadFile(s)
	if err != nil {
		return "", errors.New("neither a public key nor a readable file")
	}
	if strings.Contains(string(data), "PRIVATE KEY") {
		return "", errors.New("this file holds a private key; give the public key")
	}
	var body []string
	for line := range strings.Lines(string(bytes.TrimSpace(data))) {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "-----") {
			body = append(body, line)
		}
	}
	line := strings.Join(body, "")
	if _, err := sign.ParsePublicKey(line); err != nil {
		return "", err
	}
	return line, nil
}

// provedBad exits 3 without saying "backup proved bad": a receipt that is not
// authentic proves the record bad, not a backup.
type provedBad struct{ error }

func (p provedBad) Is(target error) bool { return target == errBadBackup }
func (p provedBad) Unwrap() error        { return p.error }
