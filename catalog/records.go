package catalog

import (
	"fmt"
	"strings"
	"time"
)

const recordPrefix = "verify-"

// RecordName names the verification record of a run started at t:
// verify-20261122T020000Z-<suffix>.json. The suffix (timeSuffix) keeps two
// verifiers that start in the same second from replacing each other's
// record, and the newer one last.
func RecordName(t time.Time) string {
	return recordPrefix + t.UTC().Format(idTimeLayout) + "-" + timeSuffix(t) + ".json"
}

// RecordTime returns the start time in a record name, and an error for any
// name not in the exact format RecordName writes (or the older
// verify-<time>.json, without the random part).
func RecordTime(name string) (time.Time, error) {
	rest, ok := strings.CutPrefix(name, recordPrefix)
	if !ok {
		return time.Time{}, fmt.Errorf("%q is not a verification record name", name)
	}
	rest, ok = strings.CutSuffix(rest, ".json")
	if !ok || len(rest) < len(idTimeLayout) {
		return time.Time{}, fmt.Errorf("%q is not a verification record name", name)
	}
	ts, suffix := rest[:len(idTimeLayout)], rest[len(idTimeLayout):]
	if suffix != "" && !validSuffix(suffix) {
		return time.Time{}, fmt.Errorf("%q is not a verification record name", name)
	}
	t, err := time.Parse(idTimeLayout, ts)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a verification record name", name)
	}
	return t, nil
}

// validSuffix accepts "-" and 8 lower-case letters and digits: what
// RecordName writes now (base32hex) and wrote before (base32).
func validSuffix(s string) bool {
	r, ok := strings.CutPrefix(s, "-")
	if !ok || len(r) != 8 {
		return false
	}
	for _, c := range r {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// SplitKey splits an object key into target, backup id and file name; ok is
// false for keys that are not a file of a backup.
func SplitKey(key string) (target, id, name string, ok bool) {
	parts := strings.Split(key, "/")
	if len(parts) != 3 {
		return "", "", "", false
	}
	if _, err := IDTime(parts[1]); err != nil {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}
