package config

import (
	"strings"
	"testing"
	"time"
)

func TestRetentionHorizon(t *testing.T) {
	const day = 24 * time.Hour
	for _, tc := range []struct {
		r        Retention
		schedule string
		want     time.Duration
		rule     string
	}{
		{Retention{KeepDaily: 14, KeepWeekly: 8}, "", 56 * day, "keep_weekly: 8"},
		{Retention{KeepLast: 7}, "0 2 * * *", 7 * day, `keep_last: 7 at schedule "0 2 * * *"`},
		{Retention{KeepLast: 3}, "0 2 1 * *", 3 * 28 * day, `keep_last: 3 at schedule "0 2 1 * *"`},
		{Retention{KeepLast: 48}, "@every 30m", 24 * time.Hour, `keep_last: 48 at schedule "@every 30m"`},
		{Retention{KeepLast: 7}, "", 0, ""},
		{Retention{KeepWithin: 36 * time.Hour, KeepHourly: 24}, "", 36 * time.Hour, "keep_within: 36h0m0s"},
	} {
		got, rule := tc.r.Horizon(tc.schedule)
		if got != tc.want || rule != tc.rule {
			t.Errorf("%+v at %q: %v (%s), want %v (%s)", tc.r, tc.schedule, got, rule, tc.want, tc.rule)
		}
	}
}

func TestWarningsObjectLock(t *testing.T) {
	c, err := Parse([]byte(`
destinations:
  vault:
    type: s3
    bucket: b
    region: us-east-1
    object_lock: {mode: governance, days: 30}
  disk: {type: local, path: /var/backups}
targets:
  orders:
    engine: postgres
    dsn: postgres://u@db/orders
    schedule: "0 2 * * *"
    destinations: [disk, vault]
    retention: {keep_last: 7, keep_daily: 14}
  audit:
    engine: postgres
    dsn: postgres://u@db/audit
    destinations: [vault]
    retention: {keep_monthly: 12}
`), "/etc/backproof.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	w := c.Warnings()
	if len(w) != 1 || !strings.Contains(w[0], "targets.orders.retention: keeps backups about 14 days (keep_daily: 14), but destination vault locks every object for 30 days") {
		t.Fatalf("warnings: %q", w)
	}
}

func TestObjectLockValidation(t *testing.T) {
	_, err := Parse([]byte(`
destinations:
  vault: {type: s3, bucket: b, region: us-east-1, object_lock: {mode: legal, days: 0}}
  disk: {type: local, path: /var/backups, object_lock: {mode: governance, days: 3}}
targets:
  orders: {engine: postgres, dsn: "postgres://u@db/orders", destinations: [vault, disk]}
`), "/etc/backproof.yaml", nil)
	for _, want := range []string{
		`destinations.vault.object_lock.mode: want governance or compliance, got "legal"`,
		"destinations.vault.object_lock.days: must be between 1 and 36500, got 0",
		"destinations.disk.object_lock",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v\nwant it to contain %q", err, want)
		}
	}
}

func TestReplicasValidation(t *testing.T) {
	_, err := Parse([]byte(`
replicas: {destination: vault, id: "bad id", ttl: 1s}
destinations:
  vault: {type: s3, bucket: b, region: us-east-1, object_lock: {mode: governance, days: 3}}
targets:
  orders: {engine: postgres, dsn: "postgres://u@db/orders", destinations: [vault]}
`), "/etc/backproof.yaml", nil)
	for _, want := range []string{
		`replicas.destination: destination "vault" has object_lock`,
		`replicas.id: invalid replica id "bad id"`,
		"replicas.ttl: must be at least 3s, got 1s",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v\nwant it to contain %q", err, want)
		}
	}
	c, err := Parse([]byte(`
replicas: {destination: disk}
destinations:
  disk: {type: local, path: /var/backups}
targets:
  orders: {engine: postgres, dsn: "postgres://u@db/orders", destinations: [disk]}
`), "/etc/backproof.yaml", nil)
	if err != nil || c.Replicas.TTL != DefaultReplicaTTL || c.Replicas.ID == "" {
		t.Fatalf("defaults: %+v, %v", c.Replicas, err)
	}
}
