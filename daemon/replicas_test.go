package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/backproof/backproof/config"
	"github.com/backproof/backproof/destination"
	"github.com/backproof/backproof/destination/local"
	"github.com/backproof/backproof/internal/clock"
	"github.com/backproof/backproof/internal/testenv"
)

func TestLiveReplicas(t *testing.T) {
	ref := time.Date(2026, 12, 4, 5, 0, 0, 0, time.UTC)
	obj := func(id string, age time.Duration) destination.Object {
		return destination.Object{Key: replicaDir + "/" + id + ".json", ModTime: ref.Add(-age)}
	}
	objs := []destination.Object{
		obj("b", 0), obj("a", 10*time.Second), obj("c", 59*time.Second), obj("d", time.Minute),
		obj("old", 101*time.Minute), {Key: replicaDir + "/notes.txt", ModTime: ref},
		{Key: replicaDir + "/deeper/e.json", ModTime: ref},
	}
	live, stale, err := liveReplicas(objs, "b", time.Minute)
	if err != nil || !slices.Equal(live, []string{"a", "b", "c"}) || !slices.Equal(stale, []string{"old"}) {
		t.Fatalf("live %v, stale %v, %v", live, stale, err)
	}
	// Ages count from our own heartbeat, on the store's clock.
	live, _, _ = liveReplicas(objs, "d", time.Minute)
	if !slices.Equal(live, []string{"a", "b", "c", "d"}) {
		t.Errorf("seen from d: %v", live)
	}
	if _, _, err := liveReplicas(objs, "x", time.Minute); err == nil {
		t.Error("no error when our own heartbeat is not listed")
	}
}

// Every target has exactly one owner, spread over the members; when a
// member leaves, only its targets move.
func TestOwnerMovesOnlyTheDeadOnesTargets(t *testing.T) {
	three := []string{"r0", "r1", "r2"}
	two := []string{"r0", "r2"}
	count := map[string]int{}
	for i := range 300 {
		target := fmt.Sprintf("svc-%d", i)
		o := owner(target, three)
		count[o]++
		if o2 := owner(target, two); o != "r1" && o2 != o {
			t.Errorf("%s moved from %s to %s when r1 left", target, o, o2)
		}
		if owner(target, []string{"r2", "r0", "r1"}) != o {
			t.Errorf("%s: owner depends on the members' order", target)
		}
	}
	for _, m := range three {
		if count[m] < 60 {
			t.Errorf("uneven: %v", count)
		}
	}
}

// A run that waited for a slot checks again that its target is still
// ours: another replica may have joined and taken it meanwhile.
func TestOwnershipCheckedAfterWaiting(t *testing.T) {
	jobs := newGatedJobs()
	cfg := &config.Config{Listen: "127.0.0.1:0", Concurrency: config.Concurrency{Backups: 1}, Targets: targets(2, "@every 1m")}
	d, clk, logs := runDaemon(t, jobs, cfg)
	reps := &replicaSet{id: "r0", ttl: time.Hour, clock: clk, live: []string{"r0"}, fresh: t0}
	// Once the schedules wait, the daemon has begun applying the config,
	// which holds d.mu until every target's gauges are set.
	if !clk.Waiting(2, timeout(t)) {
		t.Fatal("the schedules never waited on the clock")
	}
	owned := func(target string) float64 { return testutil.ToFloat64(d.Metrics.TargetOwned.WithLabelValues(target)) }
	d.mu.Lock()
	d.replicas = reps
	for _, tg := range []string{"a", "b"} {
		d.Metrics.TargetOwned.WithLabelValues(tg).Set(-1) // until a run asks
	}
	d.mu.Unlock()

	tick(t, clk, 2) // both due: one runs, the other waits for the slot
	first := jobs.waitStarted(t)
	waiting := map[string]string{"a": "b", "b": "a"}[first]
	testenv.Eventually(t, time.Minute, "the waiting run to find its target ours", func() bool { return owned(waiting) == 1 })
	// A replica joins that takes the waiting target and not the running one.
	var joined string
	for i := 1; joined == ""; i++ {
		m := fmt.Sprintf("r%d", i)
		if owner(waiting, []string{"r0", m}) == m && owner(first, []string{"r0", m}) == "r0" {
			joined = m
		}
	}
	reps.mu.Lock()
	reps.live = []string{"r0", joined}
	reps.mu.Unlock()

	jobs.finish(t)
	deadline := timeout(t)
	for {
		select {
		case l := <-logs:
			if strings.Contains(l, "not run: another replica took the target") && strings.Contains(l, "target="+waiting) {
				return
			}
		case name := <-jobs.started:
			t.Fatalf("the backup of %s ran after %s took it", name, joined)
		case <-deadline:
			t.Fatal("the waiting run neither ran nor said why not")
		}
	}
}

// The gauges follow the view ownership is decided on: a TTL without a
// heartbeat leaves only ourselves, and the next heartbeat publishes the
// others again even though the set itself did not change.
func TestReplicaGaugesFollowTheView(t *testing.T) {
	ctx := context.Background()
	store, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(t0)
	log := slog.New(slog.DiscardHandler)
	r0 := newReplicaSet(store, &config.Replicas{ID: "r0", TTL: 10 * time.Second}, clk, log)
	r1 := newReplicaSet(store, &config.Replicas{ID: "r1", TTL: 10 * time.Second}, clk, log)
	var published []int
	r0.changed = func(live []string) { published = append(published, len(live)) }
	beat := func(r *replicaSet) {
		t.Helper()
		if err := r.beat(ctx); err != nil {
			t.Fatal(err)
		}
	}
	beat(r1)
	beat(r0)
	if !slices.Equal(published, []int{2}) {
		t.Fatalf("after both beat: published %v, want [2]", published)
	}

	clk.Advance(11 * time.Second) // no heartbeat for a TTL
	for _, tg := range []string{"a", "b", "c", "d"} {
		var owned bool
		var live int
		if !r0.ownsReporting(tg, func(o bool, n int) { owned, live = o, n }) || !owned || live != 1 {
			t.Fatalf("%s after a TTL alone: owned %v of %d live, want every target, 1 live", tg, owned, live)
		}
	}

	beat(r1)
	beat(r0)
	if !slices.Equal(published, []int{2, 2}) {
		t.Fatalf("after the next heartbeat: published %v, want [2 2]", published)
	}
}
