package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// ParseSchedule parses a cron spec: five fields (minute hour dom month dow),
// six with a leading seconds field, or a descriptor such as "@daily" or
// "@every 6h". A "CRON_TZ=Area/City " or "TZ=Area/City " prefix sets the time
// zone; without it the schedule runs in the local time zone.
func ParseSchedule(spec string) (s cron.Schedule, err error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, errors.New("empty schedule")
	}
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		// robfig/cron slices up to the first space and panics without one.
		if !strings.Contains(spec, " ") {
			return nil, fmt.Errorf("invalid schedule %q: time zone prefix without a schedule", spec)
		}
	}
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("invalid schedule %q", spec)
		}
	}()
	p := cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	s, err = p.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("invalid schedule %q: %w", spec, err)
	}
	// A spec like "0 0 30 2 *" parses but never fires; cron reports that as a
	// zero Next within its five-year search window.
	if s.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return nil, fmt.Errorf("invalid schedule %q: never fires", spec)
	}
	return s, nil
}

// Expect is a parsed check expectation: either "true" or a numeric
// comparison such as "> 0".
type Expect struct {
	Op    string  // "true", "=", "!=", ">", ">=", "<" or "<="
	Value float64 // right-hand side; unused when Op is "true"
}

// ParseExpect parses "true", or one of the operators = != > >= < <=
// followed by a number: "> 0", ">=10", "= 3.5". "==" is read as "=".
func ParseExpect(s string) (Expect, error) {
	in := strings.TrimSpace(s)
	if strings.EqualFold(in, "true") {
		return Expect{Op: "true"}, nil
	}
	bad := func() (Expect, error) {
		return Expect{}, fmt.Errorf("invalid expect %q: want \"true\" or an operator (= != > >= < <=) followed by a number", s)
	}
	for _, op := range [...]string{"==", "!=", ">=", "<=", "=", ">", "<"} {
		rest, ok := strings.CutPrefix(in, op)
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return bad()
		}
		if op == "==" {
			op = "="
		}
		return Expect{Op: op, Value: v}, nil
	}
	return bad()
}

// String returns the canonical form, e.g. "> 0" or "true".
func (e Expect) String() string {
	if e.Op == "true" {
		return "true"
	}
	return e.Op + " " + strconv.FormatFloat(e.Value, 'g', -1, 64)
}

// Holds reports whether observed, the single value a check query returned,
// satisfies the expectation. For "true", t/true/1 (any case) hold and every
// other value does not. For comparisons, observed must be a number;
// otherwise Holds returns an error.
func (e Expect) Holds(observed string) (bool, error) {
	v := strings.TrimSpace(observed)
	if e.Op == "true" {
		switch strings.ToLower(v) {
		case "t", "true", "1":
			return true, nil
		}
		return false, nil
	}
	x, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(x) {
		if len(v) > 64 {
			v = v[:64] + "..."
		}
		return false, fmt.Errorf("check expects a number, got %q", v)
	}
	switch e.Op {
	case "=":
		return x == e.Value, nil
	case "!=":
		return x != e.Value, nil
	case ">":
		return x > e.Value, nil
	case ">=":
		return x >= e.Value, nil
	case "<":
		return x < e.Value, nil
	case "<=":
		return x <= e.Value, nil
	}
	return false, fmt.Errorf("invalid expect operator %q", e.Op)
}

// parseDuration is time.ParseDuration plus a leading whole-day component,
// so retention and max_age can say "14d" or "1d12h".
func parseDuration(s string) (time.Duration, error) {
	in := strings.TrimSpace(s)
	bad := fmt.Errorf("invalid duration %q (want e.g. 90s, 30m, 26h, 14d)", s)
	days, rest := int64(0), in
	if i := strings.IndexByte(in, 'd'); i > 0 {
		n, err := strconv.ParseInt(in[:i], 10, 64)
		if err != nil || n < 0 || n > math.MaxInt64/int64(24*time.Hour) {
			return 0, bad
		}
		days, rest = n, in[i+1:]
		if rest == "" {
			return time.Duration(days) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(rest)
	if err != nil {
		return 0, bad
	}
	if days > 0 {
		if d < 0 {
			return 0, bad
		}
		total := time.Duration(days) * 24 * time.Hour
		if d > math.MaxInt64-total {
			return 0, bad
		}
		d += total
	}
	return d, nil
}
