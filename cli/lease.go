package cli

import (
	"time"

	"github.com/backproof/backproof/lease"
)

// envLeaseTTL overrides lease.DefaultTTL: how long a killed process blocks
// its target. Longer tolerates more clock skew between machines.
const envLeaseTTL = "BACKPROOF_LEASE_TTL"

func (e *env) leaseOptions() (lease.Options, error) {
	opts := lease.Options{Log: e.log}
	if s := e.getenv(envLeaseTTL); s != "" {
		ttl, err := time.ParseDuration(s)
		if err != nil || ttl < time.Second {
			return opts, usagef("%s=%q: want a duration of at least 1s, e.g. 3m", envLeaseTTL, s)
		}
		opts.TTL = ttl
	}
	return opts, nil
}
