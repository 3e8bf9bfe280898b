package verify

import "time"

// Outcome is the verdict of a verification or of one check.
type Outcome string

const (
	// Pass: the backup restored and every check held.
	Pass Outcome = "pass"
	// Fail: the backup is bad. Only ever said of the backup itself.
	Fail Outcome = "fail"
	// Error: verification could not run to a verdict (no Docker, an
	// unreachable destination, a timeout). Says nothing about the backup.
	Error Outcome = "error"
	// Skipped: a check that did not apply (integrity: amcheck without the extension).
	Skipped Outcome = "skipped"
)

// RecordFormat is the version of the record layout.
const RecordFormat = 1

// Record is the result of one verification run of one backup on one
// destination. It is stored next to the backup as verify-<timestamp>.json
// and printed by verify --json.
type Record struct {
	Format          int        `json:"format"`
	Target          string     `json:"target"`
	Destination     string     `json:"destination"`
	BackupID        string     `json:"backup_id,omitempty"`
	BackupCreated   *time.Time `json:"backup_created,omitempty"`
	Outcome         Outcome    `json:"outcome"`
	Reason          string     `json:"reason,omitempty"` // why it failed or errored
	Started         time.Time  `json:"started"`
	Ended           time.Time  `json:"ended"`
	DurationSeconds float64    `json:"duration_seconds"`
	// RestoreSeconds is how long the restore into the sandbox took: the
	// restore time a real recovery can expect. Zero when it did not run.
	RestoreSeconds float64 `json:"restore_duration_seconds"`
	Image          string  `json:"image,omitempty"`
	ImageID        string  `json:"image_id,omitempty"`
	// ImageDigest is the registry digest the image was pulled by
	// ("postgres@sha256:..."); empty for an image built or imported
	// locally, and in records of earlier versions.
	ImageDigest string        `json:"image_digest,omitempty"`
	Version     string        `json:"backproof_version,omitempty"`
	Checks      []CheckResult `json:"checks"`
	// Continuity is what the continuity step compared; nil when it did not
	// run (continuity.go).
	Continuity *ContinuityReport `json:"continuity,omitempty"`
	// Stored names the record's object on the destination; empty when it
	// could not be written (StoreError says why).
	Stored     string `json:"record,omitempty"`
	StoreError string `json:"record_error,omitempty"`
}

// CheckResult is one check of a verification.
type CheckResult struct {
	Name     string  `json:"name"`
	Kind     string  `json:"kind"` // builtin | query
	Outcome  Outcome `json:"outcome"`
	Observed string  `json:"observed,omitempty"`
	Expected string  `json:"expected,omitempty"`
	Message  string  `json:"message,omitempty"`
	Seconds  float64 `json:"duration_seconds"`
}

// Check kinds.
const (
	KindBuiltin = "builtin"
	KindQuery   = "query"
)

// Names of the built-in steps and checks, in the order they run.
const (
	CheckSelect   = "select" // finding the backup and its manifest
	CheckSandbox  = "sandbox"
	CheckConnect  = "connect"
	CheckChecksum = "checksum"
	CheckRestore  = "restore"
	CheckTables   = "tables"
	CheckSchema   = "schema"
	// CheckIntegrity is the engine's own integrity check (amcheck,
	// validate...). Records written before it had this name call it
	// CheckAmcheck; CheckName reads both as CheckIntegrity.
	CheckIntegrity = "integrity"
	CheckAmcheck   = "amcheck"
)

// CheckName returns the current name of a built-in check as a stored
// record names it: records of older versions stay readable.
func CheckName(stored string) string {
	if stored == CheckAmcheck {
		return CheckIntegrity
	}
	return stored
}

// Failed returns the first check with outcome o, or nil.
func (r *Record) first(o Outcome) *CheckResult {
	for i := range r.Checks {
		if r.Checks[i].Outcome == o {
			return &r.Checks[i]
		}
	}
	return nil
}

// settle derives the record's outcome from its checks: a failed check makes
// the backup bad even if another could not run; otherwise an errored check
// makes the run an error; otherwise it passed.
func (r *Record) settle() {
	if c := r.first(Fail); c != nil {
		r.Outcome, r.Reason = Fail, c.Name+": "+c.Message
		return
	}
	if c := r.first(Error); c != nil {
		r.Outcome, r.Reason = Error, c.Name+": "+c.Message
		return
	}
	r.Outcome, r.Reason = Pass, ""
}
