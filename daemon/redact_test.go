package daemon

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/backproof/backproof/backup"
	"github.com/backproof/backproof/config"
	"github.com/backproof/backproof/internal/clock"
	"github.com/backproof/backproof/internal/redact"
)

// /status masks a password in every error it shows, last_prune's included,
// in the decoded text; and a password that is a JSON word or an engine name
// leaves the document valid.
func TestStatusRedacts(t *testing.T) {
	for _, secret := range []string{`Sntl&<>"\x`, "true", "postgres", "null"} {
		dsn := "postgres://app:" + secret + "@db/orders"
		failure := "connect " + dsn + " as app with " + secret + " failed"
		d := &Daemon{Redact: redact.New(dsn).String, Clock: clock.NewFake(t0), Version: "test", Registry: prometheus.NewRegistry()}
		d.cfg = &config.Config{Targets: map[string]*config.Target{"orders": {Name: "orders", Engine: "postgres"}}}
		d.targets = map[string]*targetState{"orders": {
			name:        "orders",
			lastPrune:   &PruneRun{At: t0, Error: failure},
			lastAttempt: &backup.Result{Target: "orders", Error: failure, Destinations: []backup.DestinationResult{{Name: "local", Error: failure}}},
		}}
		rec := httptest.NewRecorder()
		d.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/status", nil))
		body := rec.Body.String()
		var st Status
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatalf("%q: /status is not JSON: %v\n%s", secret, err, body)
		}
		for _, s := range []string{st.Targets[0].LastPrune.Error, st.Targets[0].LastAttempt.Error, st.Targets[0].LastAttempt.Destinations[0].Error} {
			if strings.Contains(s, secret) || !strings.Contains(s, redact.Mask) {
				t.Errorf("%q: error shown as %q", secret, s)
			}
		}
		if st.Targets[0].Name != "orders" || st.Version != "test" || st.Started.After(time.Now()) {
			t.Errorf("%q: status changed beyond its secrets: %s", secret, body)
		}
	}
}
