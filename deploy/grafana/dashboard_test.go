// Package grafana holds the shipped Grafana dashboard; its test checks every
// query against the metrics backproof exports.
package grafana

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/backproof/backproof/metrics"
)

var metricName = regexp.MustCompile(`backproof_[a-z_]+`)

// Every metric a panel or variable queries is one backproof exports (a
// histogram's _bucket, _sum and _count series included), and every panel
// has a query.
func TestDashboardMetrics(t *testing.T) {
	data, err := os.ReadFile("backproof.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
		Templating struct {
			List []struct {
				Name  string
				Query any
			}
		}
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("backproof.json: %v", err)
	}
	// Every metric New registers, whether or not it has a series yet.
	reg := &names{known: map[string]bool{}}
	metrics.New(reg, "test")
	known := reg.known
	if !known["backproof_verify_last_result"] {
		t.Fatalf("metric names not found: %v", known)
	}
	var exprs []string
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			exprs = append(exprs, q.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if b, _ := json.Marshal(v.Query); strings.Contains(string(b), "backproof_") {
			exprs = append(exprs, string(b))
		}
	}
	if len(exprs) < 10 {
		t.Fatalf("only %d queries", len(exprs))
	}
	for _, e := range exprs {
		names := metricName.FindAllString(e, -1)
		if len(names) == 0 {
			t.Errorf("query %q names no backproof metric", e)
		}
		for _, n := range names {
			if !known[n] {
				t.Errorf("query %q: backproof exports no metric %s", e, n)
			}
		}
	}
}

// names is a Registerer that records the names of what is registered, and
// for histograms their series' suffixes.
type names struct{ known map[string]bool }

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (n *names) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc)
	go func() { c.Describe(ch); close(ch) }()
	_, isHist := c.(*prometheus.HistogramVec)
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			n.known[m[1]] = true
			if isHist {
				for _, s := range []string{"_bucket", "_sum", "_count"} {
					n.known[m[1]+s] = true
				}
			}
		}
	}
	return nil
}

func (n *names) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		n.Register(c)
	}
}

func (n *names) Unregister(prometheus.Collector) bool { return false }
