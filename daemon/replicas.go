package daemon

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/backproof/backproof/config"
	"github.com/backproof/backproof/destination"
	"github.com/backproof/backproof/internal/clock"
)

// Replicas of a daemon on the same config meet on a destination: each
// writes a heartbeat, _replicas/<id>.json, every third of the TTL, and
// lists the others'. A replica is live while its heartbeat is younger than
// the TTL, measured on the store's clock (the listing's modification
// times against the one of our own heartbeat), so the replicas' clocks
// need not agree. Each target belongs to one live replica, chosen by
// rendezvous hashing: all replicas agree on it once they see the same
// members, and a replica's death moves only its own targets. The targets'
// leases keep two replicas apart while they disagree.
const replicaDir = "_replicas"

type replicaSet struct {
	dest  destination.Destination
	id    string
	ttl   time.Duration
	clock clock.Clock
	log   *slog.Logger

	changed func(live []string) // called when the live set changes

	// report is held from reading the live set to publishing what follows
	// from it (changed, reporting), so that gauges written from an older
	// view never land after a newer one's.
	report sync.Mutex

	mu      sync.Mutex
	live    []string  // sorted, with id
	fresh   time.Time // when live was last read, on our clock
	targets []string  // the config's targets, for changed
}

func (r *replicaSet) setTargets(names []string) {
	r.mu.Lock()
	r.targets = names
	r.mu.Unlock()
}

func (r *replicaSet) targetNames() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.targets
}

func newReplicaSet(dest destination.Destination, r *config.Replicas, c clock.Clock, log *slog.Logger) *replicaSet {
	return &replicaSet{dest: dest, id: r.ID, ttl: r.TTL, clock: c, log: log.With("replica", r.ID)}
}

func (r *replicaSet) key(id string) string { return replicaDir + "/" + id + ".json" }

// beat writes our heartbeat, then reads who is live.
func (r *replicaSet) beat(ctx context.Context) error {
	host, _ := os.Hostname()
	body, _ := json.Marshal(map[string]any{"id": r.id, "host": host, "pid": os.Getpid(), "ttl": r.ttl.String()})
	if err := r.dest.Put(ctx, r.key(r.id), bytes.NewReader(body)); err != nil {
		return fmt.Errorf("write heartbeat: %w", err)
	}
	objs, err := r.dest.List(ctx, replicaDir+"/")
	if err != nil {
		return fmt.Errorf("list replicas: %w", err)
	}
	live, stale, err := liveReplicas(objs, r.id, r.ttl)
	if err != nil {
		return err
	}
	r.report.Lock()
	r.mu.Lock()
	now := r.clock.Now()
	changed := !slices.Equal(live, r.live)
	wasAlone := len(r.live) == 0 || now.Sub(r.fresh) > r.ttl // members() was only us
	r.live, r.fresh = live, now
	r.mu.Unlock()
	if changed {
		r.log.Info("replicas changed", "live", strings.Join(live, ","))
	}
	if (changed || wasAlone) && r.changed != nil {
		r.changed(live)
	}
	r.report.Unlock()
	for _, id := range stale {
		// Long gone: its heartbeat only clutters the listing.
		if err := r.dest.Delete(ctx, r.key(id)); err == nil {
			r.log.Info("removed the heartbeat of a replica gone long ago", "gone", id)
		}
	}
	return nil
}

// liveReplicas returns the ids whose heartbeat is younger than ttl next to
// ours (self's key must be listed), and those older than 100 TTLs.
func liveReplicas(objs []destination.Object, self string, ttl time.Duration) (live, stale []string, err error) {
	var ref time.Time
	for _, o := range objs {
		if o.Key == replicaDir+"/"+self+".json" {
			ref = o.ModTime
		}
	}
	if ref.IsZero() {
		return nil, nil, fmt.Errorf("list replicas: our own heartbeat %s/%s.json is not listed", replicaDir, self)
	}
	for _, o := range objs {
		id, ok := strings.CutSuffix(path.Base(o.Key), ".json")
		if !ok || path.Dir(o.Key) != replicaDir {
			continue
		}
		switch age := ref.Sub(o.ModTime); {
		case age < ttl:
			live = append(live, id)
		case age > 100*ttl:
			stale = append(stale, id)
		}
	}
	slices.Sort(live)
	return live, stale, nil
}

// run beats every third of the TTL until ctx ends, then removes our
// heartbeat so that the others take our targets at once.
func (r *replicaSet) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if err := r.dest.Delete(dctx, r.key(r.id)); err != nil {
				r.log.Warn("cannot remove our heartbeat; the others take over when it is older than the TTL", "err", err)
			}
			return
		case <-r.clock.After(r.ttl / 3):
		}
		if err := r.beat(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("replica heartbeat failed", "err", err)
		}
	}
}

// members returns the live replicas; after a TTL without a successful
// heartbeat, only ourselves: we cannot tell who else is there, so we run
// every target and let the leases keep us apart from the others.
func (r *replicaSet) members() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.live) == 0 || r.clock.Now().Sub(r.fresh) > r.ttl {
		return []string{r.id}
	}
	return r.live
}

// owns reports whether target belongs to this replica.
// ownsReporting reports whether we run target, and hands publish what it
// saw (owned, and how many members) before any newer view can be published.
func (r *replicaSet) ownsReporting(target string, publish func(owned bool, live int)) bool {
	r.report.Lock()
	defer r.report.Unlock()
	members := r.members()
	ok := owner(target, members) == r.id
	publish(ok, len(members))
	return ok
}

// owner picks the member with the highest hash of (member, target).
func owner(target string, members []string) string {
	var best string
	var bestScore uint64
	for _, m := range members {
		sum := sha256.Sum256([]byte(m + "\x00" + target))
		if s := binary.BigEndian.Uint64(sum[:8]); best == "" || s > bestScore {
			best, bestScore = m, s
		}
	}
	return best
}

// applyReplicas starts, keeps or stops the heartbeats for cfg; d.mu is held.
// A new replica set beats once before the schedules start, so that a replica
// joining others does not begin by running every target.
func (d *Daemon) applyReplicas(cfg *config.Config) {
	rc := cfg.Replicas
	if d.replicasC != nil && rc != nil && *d.replicasC == *rc {
		d.replicas.setTargets(sortedKeys(cfg.Targets))
		return
	}
	if d.stopReps != nil {
		d.stopReps()
		d.replicas, d.replicasC, d.stopReps = nil, nil, nil
		d.Metrics.ReplicasLive.Set(1)
	}
	if rc == nil {
		return
	}
	t := &config.Target{Name: replicaDir, Destinations: []string{rc.Destination}}
	r := newReplicaSet(d.Jobs.Destinations(d.ctx, cfg, t)[0].Destination, rc, d.Clock, d.Log)
	r.setTargets(sortedKeys(cfg.Targets))
	r.changed = func(live []string) {
		for _, name := range r.targetNames() {
			d.Metrics.TargetOwned.WithLabelValues(name).Set(b2f(owner(name, live) == r.id))
		}
		d.Metrics.ReplicasLive.Set(float64(len(live)))
	}
	ctx, cancel := context.WithTimeout(d.ctx, min(rc.TTL, 10*time.Second))
	err := r.beat(ctx)
	cancel()
	if err != nil {
		d.Log.Warn("replica heartbeat failed; running every target until it works (the leases keep replicas apart)", "err", err)
	}
	ctx, stop := context.WithCancel(d.ctx)
	d.running.Add(1)
	go func() {
		defer d.running.Done()
		r.run(ctx)
	}()
	d.replicas, d.replicasC, d.stopReps = r, rc, stop
}
