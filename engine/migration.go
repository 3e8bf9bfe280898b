package engine

import (
	"strconv"
	"strings"
)

// Migration is the schema version one migration tool recorded in its table
// of the database.
type Migration struct {
	Tool    string `json:"tool"`    // flyway, liquibase, golang-migrate, rails, alembic, django, prisma
	Table   string `json:"table"`   // the tool's table, schema-qualified
	Version string `json:"version"` // the newest applied migration
	Applied int64  `json:"applied"` // how many migrations are applied
}

// Migration tools.
const (
	ToolFlyway        = "flyway"
	ToolLiquibase     = "liquibase"
	ToolGolangMigrate = "golang-migrate"
	ToolRails         = "rails"
	ToolAlembic       = "alembic"
	ToolDjango        = "django"
	ToolPrisma        = "prisma"
)

func (m Migration) String() string { return m.Tool + " " + m.Version }

// Ordered reports whether the tool's versions are ordered, so that a lower
// one means the schema went back. Alembic's revisions are random ids,
// Liquibase's and Django's are names: only their Applied counts are ordered.
func (m Migration) Ordered() bool {
	switch m.Tool {
	case ToolFlyway, ToolGolangMigrate, ToolRails, ToolPrisma:
		return true
	}
	return false
}

// CompareVersions compares two migration versions the way the tools order
// them: runs of digits by value ("1.10" > "1.9", "20240101" > "9"), other
// characters as text; "." and "_" both separate Flyway's parts. ok is false
// when either is empty.
func CompareVersions(a, b string) (c int, ok bool) {
	if a == "" || b == "" {
		return 0, false
	}
	ap, bp := versionParts(a), versionParts(b)
	for i := 0; i < len(ap) && i < len(bp); i++ {
		x, y := ap[i], bp[i]
		xn, xerr := strconv.ParseUint(x, 10, 64)
		yn, yerr := strconv.ParseUint(y, 10, 64)
		switch {
		case xerr == nil && yerr == nil:
			if xn != yn {
				if xn < yn {
					return -1, true
				}
				return 1, true
			}
		case x != y:
			return strings.Compare(x, y), true
		}
	}
	switch {
	case len(ap) < len(bp):
		return -1, true
	case len(ap) > len(bp):
		return 1, true
	}
	return 0, true
}

// versionParts splits "1.10_beta2" into "1", "10", "beta", "2".
func versionParts(v string) []string {
	var parts []string
	start := -1
	digit := false
	flush := func(i int) {
		if start >= 0 {
			parts = append(parts, strings.TrimLeft(v[start:i], "0"))
			if parts[len(parts)-1] == "" {
				parts[len(parts)-1] = "0"
			}
			start = -1
		}
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		isDigit := c >= '0' && c <= '9'
		switch {
		case c == '.' || c == '_' || c == '-':
			flush(i)
		case start < 0:
			start, digit = i, isDigit
		case isDigit != digit:
			flush(i)
			start, digit = i, isDigit
		}
	}
	flush(len(v))
	return parts
}

// MaxVersion returns the highest of versions by CompareVersions.
func MaxVersion(versions []string) string {
	var best string
	for _, v := range versions {
		if c, ok := CompareVersions(v, best); best == "" || (ok && c > 0) {
			best = v
		}
	}
	return best
}
