package daemon

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/backproof/backproof/backup"
	"github.com/backproof/backproof/config"
	"github.com/backproof/backproof/destination/local"
	"github.com/backproof/backproof/metrics"
)

type storeJobs struct {
	*gatedJobs
	dests []backup.Destination
}

func (j storeJobs) Destinations(context.Context, *config.Config, *config.Target) []backup.Destination {
	return j.dests
}

// OnReady comes once the first scan is published: from then on a scrape
// sees the catalog's verdict. (The demo announces its address there; it
// once printed it before the scan, and a scrape at once missed
// verify_last_result.)
func TestOnReadyAfterScan(t *testing.T) {
	s, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	commitBackup(t, s, time.Now().Add(-2*time.Hour).Truncate(time.Second), true)
	cfg := &config.Config{Targets: map[string]*config.Target{
		"orders": {Name: "orders", Engine: "postgres", Destinations: []string{"local"}}}}
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, "test")
	type seen struct{ series, result float64 }
	ready := make(chan seen, 1)
	d := &Daemon{
		Jobs: storeJobs{newGatedJobs(), []backup.Destination{{Name: "local", Destination: s}}},
		Log:  slog.New(slog.DiscardHandler), Registry: reg, Metrics: m,
		OnReady: func() {
			ready <- seen{float64(testutil.CollectAndCount(m.VerifyLastResult)), testutil.ToFloat64(m.VerifyLastResult.WithLabelValues("orders"))}
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx, ln, cfg, nil) }()
	select {
	case got := <-ready:
		if got.series != 1 || got.result != 1 {
			t.Errorf("at OnReady: %v verify_last_result series, value %v; want 1 series at 1", got.series, got.result)
		}
	case err := <-done:
		t.Fatalf("Serve returned before OnReady: %v", err)
	case <-timeout(t):
		t.Fatal("no OnReady")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
}
