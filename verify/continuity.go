package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/continuity"
	"github.com/backproof/backproof/destination"
	"github.com/backproof/backproof/engine"
)

// CheckContinuity is the step comparing the backup with the last good one.
const CheckContinuity = "continuity"

// ContinuityReport is what the continuity step compared, kept in the record
// for the status page and the report.
type ContinuityReport struct {
	// Baseline is the backup compared against: the newest earlier backup
	// on the destination that passed verification or was accepted; empty
	// when there is none.
	Baseline string `json:"baseline,omitempty"`
	// BaselineAccepted is set when the baseline is a backup a person
	// accepted.
	BaselineAccepted *catalog.Acceptance `json:"baseline_accepted,omitempty"`
	// Accepted is set when this backup itself was accepted: its changes
	// pass.
	Accepted *catalog.Acceptance `json:"accepted,omitempty"`
	continuity.Result
}

// continuity compares the backup with its baseline and keeps the step for
// the end of the record: it judges the data the backup holds, whatever the
// restore then says.
func (r *run) continuity(ctx context.Context, m *catalog.Manifest) {
	p := r.req.Continuity
	if p == nil || r.listing == nil {
		return
	}
	start := r.v.Now()
	res := &CheckResult{Name: CheckContinuity, Kind: KindBuiltin}
	defer func() {
		res.Seconds = round(r.v.Now().Sub(start).Seconds())
		r.continuityStep = res
	}()
	idx := slices.IndexFunc(r.listing.Backups, func(b catalog.Backup) bool { return b.ID == m.ID })
	if idx < 0 {
		return
	}
	rep := &ContinuityReport{}
	acc, err := catalog.ReadAcceptance(ctx, r.req.Store, r.req.Target, r.listing.Backups[idx])
	if err != nil {
		res.Outcome, res.Message = Error, fmt.Sprintf("read the acceptance of %s: %v", m.ID, err)
		return
	}
	rep.Accepted = acc
	base, baseM, baseAcc, err := r.baseline(ctx, idx)
	if err != nil {
		res.Outcome, res.Message = Error, err.Error()
		return
	}
	r.rec.Continuity = rep
	if base == nil || baseM.Engine != m.Engine {
		res.Outcome, res.Observed = Pass, "no baseline: no earlier backup passed verification on "+r.req.Destination
		return
	}
	rep.Baseline, rep.BaselineAccepted = base.ID, baseAcc
	pol := *p
	if pol.Words == (engine.Words{}) {
		pol.Words = r.req.Words
	}
	rep.Result = continuity.Compare(baseM, m, pol)
	res.Observed = fmt.Sprintf("%d %s, %d objects since %s", rep.Tables, pol.Words.Or().Containers, rep.Objects, base.ID)
	if baseAcc != nil {
		res.Observed += " (accepted)"
	}
	if rep.BiggestDrop != nil {
		res.Observed += "; biggest drop " + rep.Biggest
	}
	switch {
	case rep.OK():
		res.Outcome = Pass
	case acc != nil:
		res.Outcome = Pass
		res.Message = fmt.Sprintf("accepted by %s at %s", acc.By, acc.At.UTC().Format(time.RFC3339))
		if acc.Reason != "" {
			res.Message += " (" + acc.Reason + ")"
		}
		res.Message += ": " + continuity.Message(rep.Result, base.ID)
	default:
		res.Outcome, res.Message = Fail, continuity.Message(rep.Result, base.ID)
	}
}

// baseline finds the newest backup before Backups[idx] on the destination
// that a person accepted or whose newest verification with a verdict
// passed: the last known good state. It reads that one manifest whole.
func (r *run) baseline(ctx context.Context, idx int) (*catalog.Backup, *catalog.Manifest, *catalog.Acceptance, error) {
	for i := idx - 1; i >= 0; i-- {
		b := &r.listing.Backups[i]
		if b.Invalid != "" {
			continue
		}
		acc, err := catalog.ReadAcceptance(ctx, r.req.Store, r.req.Target, *b)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("read the acceptance of %s: %w", b.ID, err)
		}
		if acc == nil {
			o, err := LastVerdict(ctx, r.req.Store, r.req.Target, *b)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("cannot tell whether %s passed verification: %w", b.ID, err)
			}
			if o != Pass {
				continue
			}
		}
		m, err := catalog.ReadManifest(ctx, r.req.Store, r.req.Target, b.ID)
		switch {
		case errors.Is(err, catalog.ErrInvalid) || errors.Is(err, destination.ErrNotFound):
			continue
		case err != nil:
			return nil, nil, nil, fmt.Errorf("read the manifest of %s: %w", b.ID, err)
		}
		return b, m, acc, nil
	}
	return nil, nil, nil, nil
}

// LastVerdict is the outcome of b's newest verification on d that reached a
// verdict (pass or fail); "" when none did. Records that are gone or not
// valid JSON are passed over; one that cannot be read is an error.
func LastVerdict(ctx context.Context, d destination.Destination, target string, b catalog.Backup) (Outcome, error) {
	for _, name := range slices.Backward(b.Records) {
		var rec Record
		err := catalog.ReadRecord(ctx, d, target, b.ID, name, &rec)
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.Is(err, destination.ErrNotFound), errors.As(err, &syn), errors.As(err, &typ):
			continue
		case err != nil:
			return "", err
		}
		if rec.Outcome == Pass || rec.Outcome == Fail {
			return rec.Outcome, nil
		}
	}
	return "", nil
}
