package config

import (
	"fmt"
	"log/slog"
)

const redacted = "[REDACTED]"

// Secret holds a sensitive string such as a password, a DSN or an access key.
// Every way of printing, logging or marshalling it yields "[REDACTED]" (or ""
// when it is empty); only Reveal returns the value.
//
// The value sits behind a pointer so that even reflection-based printing of a
// struct that embeds a Secret in an unexported field shows an address, not
// the value.
type Secret struct {
	v *string
}

// NewSecret returns a Secret holding s.
func NewSecret(s string) Secret {
	if s == "" {
		return Secret{}
	}
	return Secret{v: &s}
}

// Reveal returns the secret value. Call it only where the value is handed to
// the thing that needs it (a driver, an SDK, a child's environment).
func (s Secret) Reveal() string {
	if s.v == nil {
		return ""
	}
	return *s.v
}

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.Reveal() == "" }

// String returns "[REDACTED]", or "" when the secret is empty.
func (s Secret) String() string {
	if s.IsZero() {
		return ""
	}
	return redacted
}

// GoString implements fmt.GoStringer for %#v, returning the same as String.
func (s Secret) GoString() string { return s.String() }

// Format implements fmt.Formatter so that every verb and flag prints the
// redacted form.
func (s Secret) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		fmt.Fprint(f, s.GoString())
	case verb == 'q':
		fmt.Fprintf(f, "%q", s.String())
	default:
		fmt.Fprint(f, s.String())
	}
}

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return fmt.Appendf(nil, "%q", s.String()), nil }

// MarshalYAML implements yaml.Marshaler.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }
