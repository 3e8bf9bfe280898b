package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backproof/backproof/internal/testenv"
)

// committed returns, for each target, how many backups a daemon's JSON log
// shows started and committed after its first skip bytes.
func committed(log string, skip int) map[string]int {
	out := map[string]int{}
	started := map[string]bool{}
	for _, l := range strings.Split(log[min(skip, len(log)):], "\n") {
		var rec struct{ Msg, Target string }
		if json.Unmarshal([]byte(l), &rec) != nil {
			continue
		}
		switch rec.Msg {
		case "backup starting":
			started[rec.Target] = true
		case "backup committed":
			if started[rec.Target] {
				out[rec.Target]++
			}
		}
	}
	return out
}

// Two daemons on one config share its targets: once they see each other,
// each target is backed up by one of them only; when one is killed, the
// other takes its targets.
func TestReplicasShareTargets(t *testing.T) {
	dsn := appDB(t)
	dir := t.TempDir()
	targets := []string{"orders", "billing", "users", "search", "audit", "mail"}
	config := func(id string) (string, string) {
		addr := testenv.FreeAddr(t)
		var b strings.Builder
		fmt.Fprintf(&b, "listen: %s\nlog: {format: json}\nreplicas: {destination: local, id: %s, ttl: 3s}\n", addr, id)
		fmt.Fprintf(&b, "destinations:\n  local: {type: local, path: %s}\ntargets:\n", dir)
		for _, tg := range targets {
			fmt.Fprintf(&b, "  %s: {engine: postgres, dsn: \"${BACKPROOF_TEST_APP_DSN}\", schedule: \"@every 2s\", destinations: [local]}\n", tg)
		}
		path := filepath.Join(t.TempDir(), id+".yaml")
		if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		return path, "http://" + addr
	}
	cfgA, baseA := config("replica-a")
	cfgB, baseB := config("replica-b")
	env := []string{"BACKPROOF_TEST_APP_DSN=" + dsn, envLeaseTTL + "=5s"}
	bin := testenv.Binary(t)
	a := startBin(t, bin, env, "daemon", "-c", cfgA)
	b := startBin(t, bin, env, "daemon", "-c", cfgB)
	live := func(base string) float64 {
		if resp, err := http.Get(base + "/readyz"); err != nil {
			return 0
		} else {
			resp.Body.Close()
		}
		fams, _ := scrape(t, base)
		return value(fams, "backproof_replicas_live", nil)
	}
	waitFor(t, 2*time.Minute, "both replicas to see each other", func() bool { return live(baseA) == 2 && live(baseB) == 2 })

	// From here on both see the same members: every target is owned once.
	fa, _ := scrape(t, baseA)
	fb, _ := scrape(t, baseB)
	ownedByA := map[string]bool{}
	for _, tg := range targets {
		oa, ob := value(fa, "backproof_target_owned", map[string]string{"target": tg}), value(fb, "backproof_target_owned", map[string]string{"target": tg})
		if oa+ob != 1 {
			t.Fatalf("target %s: owned %v by a, %v by b", tg, oa, ob)
		}
		ownedByA[tg] = oa == 1
	}
	skipA, skipB := len(a.stderr.String()), len(b.stderr.String())
	waitFor(t, 2*time.Minute, "every target backed up twice more", func() bool {
		ca, cb := committed(a.stderr.String(), skipA), committed(b.stderr.String(), skipB)
		for _, tg := range targets {
			if ca[tg]+cb[tg] < 2 {
				return false
			}
		}
		return true
	})
	ca, cb := committed(a.stderr.String(), skipA), committed(b.stderr.String(), skipB)
	for _, tg := range targets {
		if (ownedByA[tg] && cb[tg] > 0) || (!ownedByA[tg] && ca[tg] > 0) {
			t.Errorf("target %s (owned by a: %v) backed up by a %d times, by b %d times", tg, ownedByA[tg], ca[tg], cb[tg])
		}
	}

	// a dies without a word: b takes its targets once a's heartbeat is older than the TTL.
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-a.done
	waitFor(t, time.Minute, "b to see a gone", func() bool { return live(baseB) == 1 })
	skipB = len(b.stderr.String())
	waitFor(t, 2*time.Minute, "b to back up every target", func() bool {
		cb := committed(b.stderr.String(), skipB)
		for _, tg := range targets {
			if cb[tg] == 0 {
				return false
			}
		}
		return true
	})
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := b.wait(t, time.Minute); code != 0 {
		t.Errorf("b exit %d after SIGTERM", code)
	}
	// A replica that stops removes its heartbeat; a's stays until it is stale.
	if _, err := os.Stat(filepath.Join(dir, "_replicas", "replica-b.json")); !os.IsNotExist(err) {
		t.Errorf("b's heartbeat after its stop: %v", err)
	}
}
