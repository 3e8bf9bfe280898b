// Package testenv gives integration tests access to the real servers that
// scripts/testenv.sh starts (PostgreSQL 15, MinIO, FerretDB, dockerd) and to
// private throwaway resources on them (a fresh database, a fresh bucket, a
// private MinIO or FerretDB process).
//
// Every helper finds its server through an environment variable (see the Env*
// constants). When one is missing the test is skipped with a message naming
// the variable, unless BACKPROOF_TEST_STRICT=1 (as in CI), where the test fails
// instead: CI can never skip an integration test silently.
//
// Everything here talks only to loopback addresses; helpers refuse a DSN or an
// endpoint that points elsewhere.
//
// Run the whole suite with scripts/test.sh, or for a quicker loop:
//
//	scripts/testenv.sh up && . /tmp/backproof-testenv/env
//	go test -race ./backup/
package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
)

// Environment variables written by scripts/testenv.sh up.
const (
	EnvStrict      = "BACKPROOF_TEST_STRICT"      // "1": a missing dependency fails the test instead of skipping it
	EnvPostgresDSN = "BACKPROOF_TEST_PG_DSN"      // admin DSN (superuser postgres) of the shared PostgreSQL 15 server
	EnvPostgresBin = "BACKPROOF_TEST_PG_BIN"      // directory holding pg_dump, pg_restore, psql, postgres, initdb ...
	EnvS3Endpoint  = "BACKPROOF_TEST_S3_ENDPOINT" // http://127.0.0.1:PORT of the shared MinIO
	EnvS3AccessKey = "BACKPROOF_TEST_S3_ACCESS_KEY"
	EnvS3SecretKey = "BACKPROOF_TEST_S3_SECRET_KEY"
	EnvMinIOBin    = "BACKPROOF_TEST_MINIO_BIN" // MinIO binary, for tests that run their own server
	EnvPGImage     = "BACKPROOF_TEST_PG_IMAGE"  // local sandbox image for postgres, "{major}" allowed (scripts/sandbox-images.sh)
	EnvPromtool    = "BACKPROOF_TEST_PROMTOOL"  // promtool binary (Debian package prometheus)
	EnvChromium    = "BACKPROOF_TEST_CHROMIUM"  // chromium binary, run headless for page tests
	EnvHelm        = "BACKPROOF_TEST_HELM"      // helm binary (built by scripts/testenv.sh), for the chart's tests
)

// Strict reports whether missing test dependencies must fail tests (BACKPROOF_TEST_STRICT=1).
func Strict() bool {
	v := os.Getenv(EnvStrict)
	return v == "1" || strings.EqualFold(v, "true")
}

// Require returns the value of the environment variable envVar. When it is
// empty the test is skipped (or, in strict mode, fails) with a message naming
// the variable.
func Require(t testing.TB, envVar string) string {
	t.Helper()
	v := os.Getenv(envVar)
	if v == "" {
		Unavailable(t, "%s is not set; run the tests with scripts/test.sh "+
			"(or: scripts/testenv.sh up && . /tmp/backproof-testenv/env)", envVar)
	}
	return v
}

// Unavailable reports that a test dependency is missing: t.Skipf normally,
// t.Fatalf when BACKPROOF_TEST_STRICT=1. Use it for dependencies that are not
// a plain environment variable.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if Strict() {
		t.Fatalf("test dependency missing ("+EnvStrict+"=1 forbids skipping): "+format, args...)
	}
	t.Skipf("skipped, test dependency missing: "+format, args...)
}

// requireLoopbackURL fails the test unless raw is a URL whose host is a
// loopback address: tests talk to 127.0.0.1 / ::1 only.
func requireLoopbackURL(t testing.TB, envVar, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		t.Fatalf("%s: want a URL like scheme://user:pass@127.0.0.1:PORT/..., got an unparsable value", envVar)
	}
	if !isLoopback(u.Hostname()) {
		t.Fatalf("%s points at %q: tests may only talk to 127.0.0.1 or ::1", envVar, u.Hostname())
	}
	return u
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// uniqueName returns prefix + a sanitized form of the test name + a random
// suffix, using only [a-z0-9] and sep, at most maxLen bytes.
func uniqueName(t testing.TB, prefix string, sep byte, maxLen int) string {
	var b strings.Builder
	lastSep := true // no separator right after the prefix
	for _, r := range strings.ToLower(t.Name()) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
			lastSep = false
		case !lastSep:
			b.WriteByte(sep)
			lastSep = true
		}
	}
	suffix := string(sep) + randHex(4)
	mid := strings.Trim(b.String(), string(sep))
	if room := maxLen - len(prefix) - len(suffix) - 1; len(mid) > room {
		mid = strings.TrimRight(mid[:room], string(sep))
	}
	if mid == "" {
		return prefix + suffix[1:]
	}
	return prefix + mid + suffix
}

func randHex(nbytes int) string {
	b := make([]byte, nbytes)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return hex.EncodeToString(b)
}
