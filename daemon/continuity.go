package daemon

import (
	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/continuity"
	"github.com/backproof/backproof/verify"
)

// ContinuityStatus is a target's newest continuity verdict, for /status and
// the page.
type ContinuityStatus struct {
	Outcome     verify.Outcome   `json:"outcome"`
	Destination string           `json:"destination"`
	BackupID    string           `json:"backup_id"`
	Message     string           `json:"message,omitempty"`
	Observed    string           `json:"observed,omitempty"`
	Baseline    string           `json:"baseline,omitempty"`
	BiggestDrop *continuity.Drop `json:"biggest_drop,omitempty"`
	// Accepted is the newest acceptance of a recent backup as the baseline.
	Accepted *catalog.Acceptance `json:"accepted,omitempty"`
}

// continuityStep returns a record's continuity step, or nil.
func continuityStep(r *verify.Record) *verify.CheckResult {
	for i := range r.Checks {
		if r.Checks[i].Kind == verify.KindBuiltin && r.Checks[i].Name == verify.CheckContinuity {
			return &r.Checks[i]
		}
	}
	return nil
}

// ContinuityPassed says whether the continuity step passed in every newest
// verification per destination that reached a verdict on it; ok is false
// when none did.
func (c *Catalog) ContinuityPassed() (passed, ok bool) {
	passed = true
	for _, r := range c.LastVerifications {
		if s := continuityStep(r); s != nil && (s.Outcome == verify.Pass || s.Outcome == verify.Fail) {
			ok = true
			passed = passed && s.Outcome == verify.Pass
		}
	}
	return passed && ok, ok
}

// continuityStatus summarises the newest verifications' continuity steps: a
// failing one first, else the newest.
func (c *Catalog) continuityStatus() *ContinuityStatus {
	var pick *verify.Record
	for _, r := range c.LastVerifications {
		s := continuityStep(r)
		if s == nil {
			continue
		}
		if pick == nil || (s.Outcome == verify.Fail && continuityStep(pick).Outcome != verify.Fail) ||
			(s.Outcome == continuityStep(pick).Outcome && r.Ended.After(pick.Ended)) {
			pick = r
		}
	}
	var cs *ContinuityStatus
	if pick != nil {
		s := continuityStep(pick)
		cs = &ContinuityStatus{Outcome: s.Outcome, Destination: pick.Destination, BackupID: pick.BackupID,
			Message: s.Message, Observed: s.Observed}
		if rep := pick.Continuity; rep != nil {
			cs.Baseline, cs.BiggestDrop = rep.Baseline, rep.BiggestDrop
		}
	}
	for i := len(c.History) - 1; i >= 0; i-- {
		if a := c.History[i].Accepted; a != nil {
			if cs == nil {
				cs = &ContinuityStatus{}
			}
			cs.Accepted = a
			break
		}
	}
	return cs
}
