package config

import (
	"path"
	"strings"
)

// Continuity defaults: a table that loses more than MaxDrop of at least
// MinRows rows since the last good backup fails verification. Redis keys
// churn (caches, sessions, TTLs), so only a near-total loss of a large
// keyspace fails there.
const (
	DefaultContinuityMaxDrop      = 50.0 // percent
	DefaultContinuityMinRows      = 1000
	DefaultRedisContinuityMaxDrop = 90.0
	DefaultRedisContinuityMinRows = 10000
)

// Continuity configures the comparison of a backup with the last good one
// of its target (verify.continuity). Unset fields take the engine's default.
type Continuity struct {
	Enabled *bool      `yaml:"enabled"`  // nil: true
	MaxDrop *Tolerance `yaml:"max_drop"` // a percentage of the baseline's rows
	MinRows *int64     `yaml:"min_rows"` // tables with fewer rows in the baseline are not checked for drops
	Ignore  []string   `yaml:"ignore"`   // table patterns: "sessions", "cache.*", "public.tmp_*"
}

// ContinuityPolicy is a target's continuity settings with the defaults
// applied.
type ContinuityPolicy struct {
	Enabled bool
	MaxDrop float64 // percent of the baseline's rows
	MinRows int64
	Ignore  []string
}

// IsRedis reports whether the target is Redis or Valkey (one engine's code).
func (t *Target) IsRedis() bool { return t.Engine == EngineRedis || t.Engine == EngineValkey }

// ContinuityPolicy returns the target's continuity settings, defaults
// applied.
func (t *Target) ContinuityPolicy() ContinuityPolicy {
	p := ContinuityPolicy{Enabled: true, MaxDrop: DefaultContinuityMaxDrop, MinRows: DefaultContinuityMinRows}
	if t.IsRedis() {
		p.MaxDrop, p.MinRows = DefaultRedisContinuityMaxDrop, DefaultRedisContinuityMinRows
	}
	if t.Verify == nil || t.Verify.Continuity == nil {
		return p
	}
	c := t.Verify.Continuity
	if c.Enabled != nil {
		p.Enabled = *c.Enabled
	}
	if c.MaxDrop != nil {
		p.MaxDrop = c.MaxDrop.Percent
	}
	if c.MinRows != nil {
		p.MinRows = *c.MinRows
	}
	p.Ignore = c.Ignore
	return p
}

func (v *validator) continuity(p string, c *Continuity) {
	if c.MaxDrop != nil && c.MaxDrop.N != 0 {
		v.addf(p+".max_drop", "want a percentage of the baseline's rows, e.g. 50%%")
	}
	if c.MinRows != nil && *c.MinRows < 0 {
		v.addf(p+".min_rows", "must not be negative")
	}
	for i, pat := range c.Ignore {
		if _, err := path.Match(pat, ""); err != nil || strings.TrimSpace(pat) == "" {
			v.addf(indexPath(p+".ignore", i), "invalid pattern %s: use names with * and ? wildcards, e.g. sessions or \"cache.*\"", quoteValue(pat))
		}
	}
}
