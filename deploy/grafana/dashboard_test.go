// Package grafana holds the shipped Grafana dashboard, backproof.json; its
// test checks every query against the metrics the daemon exports.
package grafana

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/backproof/backproof/internal/testenv"
	"github.com/backproof/backproof/metrics"
)

type dashboard struct {
	Title, UID string
	Panels     []struct {
		Title   string
		Targets []struct{ Expr string }
	}
	Templating struct {
		List []struct {
			Name       string
			Definition string
		}
	}
}

// exported returns every series name the daemon exports with its labels.
func exported(t *testing.T) map[string][]string {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, "test")
	m.Init(metrics.Target{Name: "t", Destinations: []string{"d"}, Checks: []string{"c"}, Jobs: []string{metrics.JobBackup, metrics.JobVerify, metrics.JobPrune}})
	// Series that appear only after a run.
	m.BackupDuration.WithLabelValues("t").Observe(1)
	m.VerifyDuration.WithLabelValues("t").Observe(1)
	for _, g := range []*prometheus.GaugeVec{m.RestoreDuration, m.VerifyLastResult, m.ContinuityLast} {
		g.WithLabelValues("t")
	}
	m.CheckLastSuccess.WithLabelValues("t", "c")
	m.NextRun.WithLabelValues("t", metrics.JobBackup)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, f := range fams {
		var labels []string
		for _, l := range f.Metric[0].Label {
			labels = append(labels, l.GetName())
		}
		out[f.GetName()] = labels
		if f.GetType() == dto.MetricType_HISTOGRAM {
			out[f.GetName()+"_bucket"] = append(slices.Clone(labels), "le")
			out[f.GetName()+"_sum"] = labels
			out[f.GetName()+"_count"] = labels
		}
	}
	return out
}

var (
	selector = regexp.MustCompile(`(backproof_[a-z0-9_]+)(\{([^}]*)\})?`)
	matcher  = regexp.MustCompile(`(\w+)\s*(=~|!~|!=|=)`)
	grouping = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
)

// Every query of the dashboard names metrics the daemon exports, with
// labels they have; promtool parses each one.
func TestDashboard(t *testing.T) {
	data, err := os.ReadFile("backproof.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("backproof.json: %v", err)
	}
	if d.UID == "" || d.Title == "" || len(d.Panels) == 0 {
		t.Fatalf("dashboard without uid, title or panels")
	}
	have := exported(t)
	check := func(where, expr string) {
		var used []string
		for _, s := range selector.FindAllStringSubmatch(expr, -1) {
			labels, ok := have[s[1]]
			if !ok {
				t.Errorf("%s: %s is not a metric backproof exports", where, s[1])
				continue
			}
			used = append(used, labels...)
			for _, l := range matcher.FindAllStringSubmatch(s[3], -1) {
				if !slices.Contains(labels, l[1]) {
					t.Errorf("%s: %s has no label %s (it has %v)", where, s[1], l[1], labels)
				}
			}
		}
		if len(used) == 0 && !strings.Contains(expr, "backproof_") {
			t.Errorf("%s: query names no backproof metric: %s", where, expr)
		}
		for _, g := range grouping.FindAllStringSubmatch(expr, -1) {
			for _, l := range strings.Split(g[1], ",") {
				if l = strings.TrimSpace(l); !slices.Contains(used, l) {
					t.Errorf("%s: groups by %s, which none of its metrics has", where, l)
				}
			}
		}
	}
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	n := 0
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			check(fmt.Sprintf("panel %q", p.Title), q.Expr)
			// Grafana's variables as promtool would see them filled in.
			expr := strings.ReplaceAll(q.Expr, "$__rate_interval", "5m")
			js, _ := json.Marshal(expr)
			n++
			fmt.Fprintf(&rules, "      - record: dashboard:query_%d\n        expr: %s\n", n, js)
		}
	}
	for _, v := range d.Templating.List {
		if v.Definition != "" {
			check("variable "+v.Name, v.Definition)
		}
	}

	promtool := testenv.Require(t, testenv.EnvPromtool)
	file := filepath.Join(t.TempDir(), "queries.yml")
	if err := os.WriteFile(file, []byte(rules.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules (the dashboard's queries): %v\n%s", err, out)
	}
}
