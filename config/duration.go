package config

import "time"

// ParseDuration parses a duration as the config writes it: Go's syntax plus
// a leading whole-day part ("90d", "1d12h").
func ParseDuration(s string) (time.Duration, error) { return parseDuration(s) }
