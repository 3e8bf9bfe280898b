package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/backproof/backproof/daemon"
	"github.com/backproof/backproof/internal/testenv"
)

// startDaemon runs `backproof daemon` in-process until the test ends (or
// stop is called) and returns its base URL.
func startDaemon(t *testing.T, cfg string) (base string, stop func() (int, string)) {
	t.Helper()
	base, stop, _ = startDaemonLog(t, cfg)
	return base, stop
}

// startDaemonLog is startDaemon that also returns the daemon's log as it
// is written.
func startDaemonLog(t *testing.T, cfg string) (base string, stop func() (int, string), log *testenv.Buffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stderr := &testenv.Buffer{}
	done := make(chan int, 1)
	go func() {
		env := func(k string) string { return os.Getenv(k) }
		done <- Main(ctx, []string{"daemon", "-c", cfg}, io.Discard, stderr, env, Build{Version: "test"})
	}()
	var once sync.Once
	var code int
	stop = func() (int, string) {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(2 * time.Minute):
				t.Fatalf("daemon still running 2 minutes after the stop")
			}
		})
		return code, stderr.String()
	}
	t.Cleanup(func() { stop() })
	base = "http://" + listenOf(t, cfg)
	waitFor(t, 2*time.Minute, "the daemon to be ready", func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return base, stop, stderr
}

func listenOf(t *testing.T, cfg string) string {
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if a, ok := strings.CutPrefix(strings.TrimSpace(l), "listen: "); ok {
			return a
		}
	}
	t.Fatal("config has no listen line")
	return ""
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, timeout, what, cond)
}

// scrape returns /metrics parsed, and its text.
func scrape(t *testing.T, base string) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams, string(body)
}

// value is the sample of family name whose labels include want, or -999.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return -999
	}
next:
	for _, m := range f.Metric {
		for k, v := range want {
			found := false
			for _, l := range m.Label {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -999
}

func getStatus(t *testing.T, base string) daemon.Status {
	t.Helper()
	resp, err := http.Get(base + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st daemon.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func daemonConfig(t *testing.T, dsn, target string) string {
	t.Helper()
	top := fmt.Sprintf("listen: %s\nsandbox: {images: {postgres: %q}}", testenv.FreeAddr(t), testenv.PostgresImage(t))
	return e2eConfigWith(t, dsn, testenv.S3(t).SecretKey, top, target)
}

// The daemon backs up and verifies on schedule; metrics, /status, the page
// and `backproof list` tell the same story.
func TestDaemonSchedules(t *testing.T) {
	testenv.NoSandboxesLeft(t)
	dsn := appDB(t)
	cfg := daemonConfig(t, dsn, `    schedule: "@every 2s"
    verify:
      schedule: "@every 3s"
      checks:
        - {name: orders-present, query: "SELECT count(*) FROM orders", expect: "> 0"}`)
	base, stop := startDaemon(t, cfg)
	orders := map[string]string{"target": "orders"}

	var fams map[string]*dto.MetricFamily
	defer func() {
		if t.Failed() {
			st, _ := json.MarshalIndent(getStatus(t, base), "", " ")
			t.Logf("status: %s", st)
		}
	}()
	// The job sets the verdict; the catalog scan that follows it, the rest.
	waitFor(t, 2*time.Minute, "a backup, a passing verification and its restore time", func() bool {
		fams, _ = scrape(t, base)
		return value(fams, "backproof_backup_last_success_timestamp_seconds", orders) > 0 &&
			value(fams, "backproof_verify_last_result", orders) == 1 &&
			value(fams, "backproof_verified_backup_timestamp_seconds", orders) > 0 &&
			value(fams, "backproof_restore_duration_seconds", orders) > 0
	})
	first := value(fams, "backproof_backup_last_success_timestamp_seconds", orders)
	if c := value(fams, "backproof_check_last_success", map[string]string{"target": "orders", "check": "orders-present"}); c != 1 {
		t.Errorf("check_last_success %v", c)
	}
	waitFor(t, time.Minute, "the continuity step's metric", func() bool {
		f, _ := scrape(t, base)
		return value(f, "backproof_continuity_last_success", orders) == 1
	})
	for _, d := range []string{"local", "offsite"} {
		if v := value(fams, "backproof_destination_last_success_timestamp_seconds", map[string]string{"target": "orders", "destination": d}); v <= 0 {
			t.Errorf("destination %s last success %v", d, v)
		}
	}
	for _, j := range []string{"backup", "verify"} {
		if v := value(fams, "backproof_schedule_next_run_timestamp_seconds", map[string]string{"target": "orders", "job": j}); v < float64(time.Now().Unix()-1) {
			t.Errorf("next %s run %v is in the past", j, v)
		}
	}
	waitFor(t, time.Minute, "the last-success timestamp to move", func() bool {
		fams, _ = scrape(t, base)
		return value(fams, "backproof_backup_last_success_timestamp_seconds", orders) > first
	})
	if v := value(fams, "backproof_build_info", map[string]string{"version": "test"}); v != 1 {
		t.Errorf("build_info %v", v)
	}
	_, text := scrape(t, base)
	for _, want := range []string{"go_goroutines", "process_resident_memory_bytes", "backproof_backup_duration_seconds_bucket"} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	lintMetrics(t, text)

	code, stderr := stop()
	if code != 0 {
		t.Errorf("daemon exit %d after the stop: %s", code, stderr)
	}
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("daemon log line is not JSON: %q", line)
			break
		}
	}
	if !strings.Contains(stderr, `"msg":"backup committed","target":"orders","job":"backup","backup_id":"`) {
		t.Errorf("no structured backup log line:\n%s", lastLines(stderr, 20))
	}

	// The destinations are the only state: a fresh daemon on the same
	// config, without schedules so that nothing changes while it is read,
	// shows what `backproof list` shows, on /status and on the page.
	unscheduled := filepath.Join(t.TempDir(), "unscheduled.yaml")
	yaml, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, l := range strings.Split(string(yaml), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "schedule:") {
			kept = append(kept, l)
		}
	}
	if err := os.WriteFile(unscheduled, []byte(strings.Join(kept, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	// Stopping may have cancelled a verification: prove the newest backup on
	// both destinations again, so the page has a verdict for each.
	if r := runCLI(t, context.Background(), "verify", "-c", unscheduled); r.code != 0 {
		t.Fatalf("verify exit %d: %s", r.code, r.stderr)
	}
	reportOnHistory(t, cfg)
	base, _ = startDaemon(t, unscheduled)
	st := getStatus(t, base)
	r := runCLI(t, context.Background(), "list", "-c", cfg, "--json")
	if r.code != 0 {
		t.Fatalf("list exit %d: %s", r.code, r.stderr)
	}
	if len(st.Targets) != 1 {
		t.Fatalf("status has %d targets", len(st.Targets))
	}
	compareWithList(t, st.Targets[0], decode[listDoc](t, r.stdout))
	page := getPage(t, base)
	for _, d := range st.Targets[0].Destinations {
		if !strings.Contains(page, d.Newest.ID) {
			t.Errorf("status page lacks %s's newest backup %s", d.Name, d.Newest.ID)
		}
	}
	// Rendered here, where no schedule makes the health depend on how fast
	// this machine ran the last backup.
	renderInChromium(t, base)
}

// reportDoc is `report --format json` as the tests read it.
type reportDoc struct {
	Signed  bool
	Targets []struct {
		Name          string
		Summary       struct{ Verifications, Pass, Fail, Error int }
		Verifications []struct {
			Destination, Outcome, Record, Receipt string
			BackupID                              string  `json:"backup_id"`
			RestoreSeconds                        float64 `json:"restore_duration_seconds"`
			BackupAge                             float64 `json:"backup_age_seconds"`
			Authentic                             bool
		}
	}
}

// reportOnHistory checks `report` on what a daemon left: every verification
// record on the destinations is in it, each pass with its restore time and
// backup age, and none counted as authentic without signing.
func reportOnHistory(t *testing.T, cfg string) {
	t.Helper()
	r := runCLI(t, context.Background(), "report", "-c", cfg, "--since", "1d", "--format", "json")
	if r.code != 0 {
		t.Fatalf("report exit %d: %s", r.code, r.stderr)
	}
	doc := decode[reportDoc](t, r.stdout)
	if doc.Signed || len(doc.Targets) != 1 || doc.Targets[0].Name != "orders" {
		t.Fatalf("report: %s", r.stdout)
	}
	tg := doc.Targets[0]
	want := 0
	for _, d := range configDests(t, cfg) {
		objs, err := d.List(context.Background(), "orders/")
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if strings.HasPrefix(path.Base(o.Key), "verify-") {
				want++
			}
		}
	}
	// The daemon verified at least once, and the verify above once per destination.
	if want < 3 || tg.Summary.Verifications != want || len(tg.Verifications) != want || tg.Summary.Fail != 0 || tg.Summary.Pass < 3 {
		t.Fatalf("report counts %+v with %d entries; the destinations hold %d records:\n%s", tg.Summary, len(tg.Verifications), want, r.stdout)
	}
	for _, e := range tg.Verifications {
		if e.Authentic || (e.Destination != "local" && e.Destination != "offsite") || e.BackupID == "" {
			t.Errorf("entry %+v", e)
		}
		if e.Outcome == "pass" && (e.RestoreSeconds <= 0 || e.BackupAge < 0) {
			t.Errorf("pass without restore time or backup age: %+v", e)
		}
	}
	for _, format := range []string{"md", "html"} {
		r := runCLI(t, context.Background(), "report", "-c", cfg, "--format", format)
		if r.code != 0 || !strings.Contains(r.stdout, tg.Verifications[len(tg.Verifications)-1].BackupID) {
			t.Errorf("report --format %s: exit %d:\n%s%s", format, r.code, r.stdout, r.stderr)
		}
	}
}

func compareWithList(t *testing.T, st daemon.TargetStatus, l listDoc) {
	t.Helper()
	for _, d := range st.Destinations {
		var ids []string
		for _, b := range l.Backups {
			if b.Destination == d.Name && b.State == "committed" {
				ids = append(ids, b.ID)
			}
		}
		slices.Sort(ids)
		if len(ids) != d.Backups || len(ids) == 0 || ids[len(ids)-1] != d.Newest.ID {
			t.Errorf("%s: /status says %d backups, newest %s; list says %d, %v", d.Name, d.Backups, d.Newest.ID, len(ids), ids)
		}
	}
}

func getPage(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	return string(b)
}

func lintMetrics(t *testing.T, text string) {
	t.Helper()
	cmd := exec.Command(testenv.Require(t, testenv.EnvPromtool), "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// A backup slower than its interval is skipped, never run twice, and counted.
func TestDaemonSkipsOverlappingRuns(t *testing.T) {
	dsn := appDB(t)
	cfg := daemonConfig(t, dsn, `    schedule: "@every 1s"`)
	base, _ := startDaemon(t, cfg)
	orders := map[string]string{"target": "orders"}
	backupJob := map[string]string{"target": "orders", "job": "backup"}
	waitFor(t, time.Minute, "a first backup", func() bool {
		fams, _ := scrape(t, base)
		return value(fams, "backproof_backup_last_success_timestamp_seconds", orders) > 0
	})

	// An exclusive lock makes the next backup wait (pg_dump needs a share lock).
	conn, err := pgx.Connect(context.Background(), testenv.PostgresDSN(t)[:strings.LastIndex(testenv.PostgresDSN(t), "/")]+"/"+dbName(t, dsn)+"?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	tx, err := conn.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(context.Background(), "LOCK TABLE orders IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	var held map[string]*dto.MetricFamily
	waitFor(t, 2*time.Minute, "a backup blocked on the lock", func() bool {
		held, _ = scrape(t, base)
		return value(held, "backproof_jobs_running", map[string]string{"job": "backup"}) == 1
	})
	attempts := value(held, "backproof_backup_attempts_total", orders)
	skipped := value(held, "backproof_schedule_skipped_runs_total", backupJob)
	var during map[string]*dto.MetricFamily
	waitFor(t, 2*time.Minute, "three ticks skipped while the backup waits", func() bool {
		during, _ = scrape(t, base)
		return value(during, "backproof_schedule_skipped_runs_total", backupJob) >= skipped+3
	})
	if a := value(during, "backproof_backup_attempts_total", orders); a != attempts {
		t.Errorf("attempts went from %v to %v while one backup ran", attempts, a)
	}
	if r := value(during, "backproof_jobs_running", map[string]string{"job": "backup"}); r != 1 {
		t.Errorf("%v backups running", r)
	}
	if err := tx.Rollback(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, "the blocked backup to finish", func() bool {
		fams, _ := scrape(t, base)
		return value(fams, "backproof_backup_attempts_total", orders) > attempts
	})
}

func dbName(t *testing.T, dsn string) string {
	c, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return c.Database
}

// A broken source makes backup_failures_total rise; fed to promtool with
// the real metric names, the shipped rules fire the stale and failing alerts.
func TestDaemonBrokenSourceAlerts(t *testing.T) {
	cfg := daemonConfig(t, "postgres://nobody:"+sentinel+"@"+testenv.FreeAddr(t)+"/none?sslmode=disable", `    schedule: "@every 1s"`)
	base, stop := startDaemon(t, cfg)
	orders := map[string]string{"target": "orders"}
	var first, second map[string]*dto.MetricFamily
	waitFor(t, 2*time.Minute, "a failed backup", func() bool {
		first, _ = scrape(t, base)
		return value(first, "backproof_backup_failures_total", orders) >= 1
	})
	waitFor(t, 2*time.Minute, "more failed backups", func() bool {
		second, _ = scrape(t, base)
		return value(second, "backproof_backup_failures_total", orders) > value(first, "backproof_backup_failures_total", orders)
	})
	if v := value(second, "backproof_backup_last_success_timestamp_seconds", orders); v != 0 {
		t.Errorf("last success %v with a broken source", v)
	}
	if v := value(second, "backproof_destination_failures_total", map[string]string{"target": "orders", "destination": "local"}); v != 0 {
		t.Errorf("destination failures %v: the source failed, not the destination", v)
	}

	// The fixture: every scraped backproof series, first scrape at 0m, the
	// second from 1m on.
	var series strings.Builder
	for name, f := range second {
		if !strings.HasPrefix(name, "backproof_") || f.GetType() == dto.MetricType_HISTOGRAM {
			continue
		}
		for _, m := range f.Metric {
			labels := map[string]string{}
			for _, l := range m.Label {
				labels[l.GetName()] = l.GetValue()
			}
			v2 := value(second, name, labels)
			v1 := value(first, name, labels)
			if v1 == -999 {
				v1 = v2
			}
			var ls []string
			for k, v := range labels {
				ls = append(ls, fmt.Sprintf("%s=%q", k, v))
			}
			slices.Sort(ls)
			fmt.Fprintf(&series, "      - {series: '%s{%s}', values: '%g %g+0x30'}\n", name, strings.Join(ls, ","), v1, v2)
		}
	}
	rules, err := filepath.Abs("../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	fixture := fmt.Sprintf(`rule_files: [%q]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
%s    promql_expr_test:
      - expr: ALERTS{alertstate="firing", target="orders"}
        eval_time: 10m
        exp_samples:
          - {labels: 'ALERTS{alertname="BackproofBackupFailing", alertstate="firing", severity="warning", target="orders"}', value: 1}
          - {labels: 'ALERTS{alertname="BackproofBackupStale", alertstate="firing", severity="critical", target="orders"}', value: 1}
          # No backup ever reached them either.
          - {labels: 'ALERTS{alertname="BackproofDestinationFailing", alertstate="firing", destination="local", severity="warning", target="orders"}', value: 1}
          - {labels: 'ALERTS{alertname="BackproofDestinationFailing", alertstate="firing", destination="offsite", severity="warning", target="orders"}', value: 1}
`, rules, series.String())
	path := filepath.Join(t.TempDir(), "fixture_test.yml")
	if err := os.WriteFile(path, []byte(fixture), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(testenv.Require(t, testenv.EnvPromtool), "test", "rules", path).CombinedOutput(); err != nil {
		t.Errorf("promtool test rules: %v\n%s\nfixture:\n%s", err, out, fixture)
	}
	if code, stderr := stop(); code != 0 {
		t.Errorf("exit %d: %s", code, lastLines(stderr, 10))
	}
}

// renderInChromium loads the status page in headless Chromium, saves a
// screenshot (test-artifacts/status-page.png, or $BACKPROOF_TEST_ARTIFACTS)
// and checks the DOM it rendered.
func renderInChromium(t *testing.T, base string) {
	t.Helper()
	chromium := testenv.Require(t, testenv.EnvChromium)
	dir := os.Getenv("BACKPROOF_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "test-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot, err := filepath.Abs(filepath.Join(dir, "status-page.png"))
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(shot)
	run := func(args ...string) []byte {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		args = append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--user-data-dir=" + t.TempDir(), "--window-size=1280,800"}, args...)
		cmd := exec.CommandContext(ctx, chromium, append(args, base+"/")...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
		}
		return out
	}
	run("--screenshot=" + shot)
	png, err := os.ReadFile(shot)
	if err != nil || len(png) < 10_000 || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("screenshot %s: %d bytes, %v", shot, len(png), err)
	}
	t.Logf("status page screenshot: %s", shot)
	dom := string(run("--dump-dom"))
	for _, want := range []string{
		`<section class="target ok" id="target-orders">`,
		`<span class="badge ok">ok</span>`,
		`<svg class="chart"`, `<polyline class="restore"`, `class="bar pass"`,
		`<td>orders-present</td>`, `>local: pass</span>`, `>offsite: pass</span>`,
		`<td>offsite</td>`, `newest verified backup (RPO)`, `last restore time (RTO)`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered page lacks %s", want)
		}
	}
	if strings.Count(dom, "<rect ") < 2 {
		t.Errorf("chart has %d bars", strings.Count(dom, "<rect "))
	}
}
