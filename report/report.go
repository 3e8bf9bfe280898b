// Package report gathers the evidence an auditor asks for: every
// verification of every target in a period, with its verdict, restore time
// (RTO), the backup's age when it was verified (RPO), where it ran, and
// whether its record is an authentic receipt.
package report

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/destination"
	"github.com/backproof/backproof/sign"
	"github.com/backproof/backproof/verify"
)

// Source is a destination to read evidence from, as stored: the report
// judges every record itself rather than trusting a filtered view.
type Source struct {
	Name  string
	Store destination.Destination
}

// Options bound what the report covers.
type Options struct {
	Since time.Time   // verifications started before this are left out
	Now   time.Time   // when the report is made
	Trust *sign.Trust // nil: signing is not configured; no receipt is authentic
}

// Report is the evidence for a period.
type Report struct {
	Generated time.Time `json:"generated"`
	Since     time.Time `json:"since"`
	// Signed says whether receipts were checked against trusted keys.
	Signed  bool     `json:"signed"`
	Targets []Target `json:"targets"`
}

// Target is one target's evidence.
type Target struct {
	Name          string   `json:"name"`
	Summary       Summary  `json:"summary"`
	Verifications []Entry  `json:"verifications"` // oldest first
	Errors        []string `json:"errors,omitempty"`
}

// Summary counts a target's verifications in the period.
type Summary struct {
	Verifications int `json:"verifications"`
	Pass          int `json:"pass"`
	Fail          int `json:"fail"`
	Error         int `json:"error"`
	Authentic     int `json:"authentic_receipts"`
	// NotAuthentic counts records whose receipts are not authentic. With
	// signing they count for nothing else.
	NotAuthentic int `json:"not_authentic_receipts"`
	// MaxRestoreSeconds is the longest restore that passed: the RTO shown.
	MaxRestoreSeconds float64 `json:"max_restore_duration_seconds"`
	// MaxBackupAgeSeconds is the oldest a passing backup was when it was
	// verified: the RPO shown.
	MaxBackupAgeSeconds float64    `json:"max_backup_age_seconds"`
	LastPass            *time.Time `json:"last_pass,omitempty"`
}

// Entry is one verification.
type Entry struct {
	Destination    string         `json:"destination"`
	BackupID       string         `json:"backup_id"`
	BackupCreated  *time.Time     `json:"backup_created,omitempty"`
	Started        time.Time      `json:"started"`
	Ended          time.Time      `json:"ended"`
	Outcome        verify.Outcome `json:"outcome"`
	Reason         string         `json:"reason,omitempty"`
	RestoreSeconds float64        `json:"restore_duration_seconds"`
	// BackupAgeSeconds is how old the backup was when verified.
	BackupAgeSeconds float64 `json:"backup_age_seconds"`
	Record           string  `json:"record"`
	Authentic        bool    `json:"authentic"`
	// Receipt says who signed the record, or why it is not authentic.
	Receipt string `json:"receipt"`
}

// Build reads every verification record of targets on sources.
func Build(ctx context.Context, targets []string, sources map[string][]Source, opts Options) (*Report, error) {
	r := &Report{Generated: opts.Now.UTC(), Since: opts.Since.UTC(), Signed: opts.Trust != nil, Targets: []Target{}}
	for _, name := range targets {
		t := Target{Name: name, Verifications: []Entry{}}
		for _, src := range sources[name] {
			if err := collect(ctx, &t, src, opts); err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				t.Errors = append(t.Errors, fmt.Sprintf("%s: %v", src.Name, err))
			}
		}
		slices.SortStableFunc(t.Verifications, func(a, b Entry) int { return a.Started.Compare(b.Started) })
		t.Summary = summarize(t.Verifications, r.Signed)
		r.Targets = append(r.Targets, t)
	}
	return r, nil
}

func collect(ctx context.Context, t *Target, src Source, opts Options) error {
	l, err := catalog.List(ctx, src.Store, t.Name)
	if err != nil {
		return err
	}
	for _, b := range l.Backups {
		for _, name := range b.Records {
			if at, _ := catalog.RecordTime(name); at.Before(opts.Since.Truncate(time.Second)) {
				continue
			}
			t.Verifications = append(t.Verifications, entry(ctx, src, t.Name, b.ID, name, opts))
		}
	}
	return nil
}

// entry reads one record and judges it as a receipt.
func entry(ctx context.Context, src Source, target, id, name string, opts Options) Entry {
	e := Entry{Destination: src.Name, BackupID: id, Record: name, Outcome: verify.Error}
	e.Started, _ = catalog.RecordTime(name)
	doc, err := read(ctx, src.Store, catalog.Key(target, id, name))
	if err != nil {
		e.Receipt = "unreadable: " + err.Error()
		return e
	}
	var rec verify.Record
	if err := json.Unmarshal(doc, &rec); err != nil {
		e.Receipt = "not a verification record: " + err.Error()
		return e
	}
	e.BackupCreated, e.Started, e.Ended = rec.BackupCreated, rec.Started, rec.Ended
	e.Outcome, e.Reason, e.RestoreSeconds = rec.Outcome, rec.Reason, rec.RestoreSeconds
	if rec.BackupCreated != nil {
		e.BackupAgeSeconds = rec.Started.Sub(*rec.BackupCreated).Seconds()
	}
	switch key, err := receipt(doc, opts.Trust); {
	case err != nil:
		e.Receipt = err.Error()
	default:
		if err := sign.CheckRecordPlace(doc, src.Name, target, id, name); err != nil {
			e.Receipt = err.Error()
			break
		}
		e.Authentic, e.Receipt = true, "signed by "+key
	}
	return e
}

func receipt(doc []byte, trust *sign.Trust) (string, error) {
	if trust == nil {
		return "", fmt.Errorf("%w: signing is not configured", sign.ErrNotAuthentic)
	}
	return trust.Verify(doc)
}

func read(ctx context.Context, d destination.Destination, key string) ([]byte, error) {
	rc, err := d.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	const max = 16 << 20
	data, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return nil, err
	}
	if len(data) > max {
		return nil, fmt.Errorf("larger than %d bytes", max)
	}
	return bytes.TrimSpace(data), nil
}

func summarize(es []Entry, signed bool) Summary {
	var s Summary
	for _, e := range es {
		s.Verifications++
		if e.Authentic {
			s.Authentic++
		} else {
			s.NotAuthentic++
			if signed {
				continue
			}
		}
		switch e.Outcome {
		case verify.Pass:
			s.Pass++
			s.MaxRestoreSeconds = max(s.MaxRestoreSeconds, e.RestoreSeconds)
			s.MaxBackupAgeSeconds = max(s.MaxBackupAgeSeconds, e.BackupAgeSeconds)
			if s.LastPass == nil || e.Ended.After(*s.LastPass) {
				t := e.Ended
				s.LastPass = &t
			}
		case verify.Fail:
			s.Fail++
		default:
			s.Error++
		}
	}
	return s
}
