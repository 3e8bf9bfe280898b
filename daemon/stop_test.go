package daemon

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/backproof/backproof/backup"
	"github.com/backproof/backproof/config"
	"github.com/backproof/backproof/destination"
	"github.com/backproof/backproof/internal/clock"
	"github.com/backproof/backproof/metrics"
)

// hangingStore is a destination whose listings never answer until their
// context ends: a store that accepts connections and says nothing.
type hangingStore struct {
	destination.Destination
	listing chan struct{}
}

func (h hangingStore) List(ctx context.Context, _ string) ([]destination.Object, error) {
	select {
	case h.listing <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

type hangingJobs struct {
	*gatedJobs
	store hangingStore
}

func (j hangingJobs) Destinations(context.Context, *config.Config, *config.Target) []backup.Destination {
	return []backup.Destination{{Name: "offsite", Destination: j.store}}
}

// The startup scan of a destination that never answers does not hold the
// stop: SIGTERM (the context) ends it, well within the documented 30 s.
func TestStopDuringHangingScan(t *testing.T) {
	jobs := hangingJobs{newGatedJobs(), hangingStore{listing: make(chan struct{}, 1)}}
	reg := prometheus.NewRegistry()
	d := &Daemon{Jobs: jobs, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Registry: reg,
		Metrics: metrics.New(reg, "test"), Clock: clock.NewFake(t0), StopTimeout: 30 * time.Second}
	cfg := &config.Config{Listen: "127.0.0.1:0", Targets: targets(1, "")}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, cfg, nil) }()
	select {
	case <-jobs.store.listing:
	case <-timeout(t):
		t.Fatal("the startup scan never listed the destination")
	}
	cancel() // SIGTERM
	select {
	case <-done:
	case <-time.After(30 * time.Second): // the documented stop deadline
		t.Fatal("the daemon did not stop within 30 s of SIGTERM while a scan hung")
	}
}

// The HTTP server has header, read, write and idle timeouts.
func TestHTTPServerTimeouts(t *testing.T) {
	srv := newHTTPServer(http.NotFoundHandler())
	for name, v := range map[string]time.Duration{"read header": srv.ReadHeaderTimeout, "read": srv.ReadTimeout,
		"write": srv.WriteTimeout, "idle": srv.IdleTimeout} {
		if v <= 0 || v > 5*time.Minute {
			t.Errorf("%s timeout %v", name, v)
		}
	}
}
