package lease_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backproof/backproof/backup"
	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/destination"
	"github.com/backproof/backproof/destination/local"
	"github.com/backproof/backproof/destination/s3"
	"github.com/backproof/backproof/internal/testenv"
	"github.com/backproof/backproof/lease"
)

// dests returns a fresh local destination and a fresh MinIO bucket.
func dests(t *testing.T) []backup.Destination {
	t.Helper()
	l, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	env := testenv.S3(t)
	m, err := s3.New(context.Background(), s3.Config{
		Bucket: testenv.NewBucket(t, env), Prefix: "prod", Region: env.Region, Endpoint: env.Endpoint,
		PathStyle: true, AccessKeyID: env.AccessKey, SecretAccessKey: env.SecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	return []backup.Destination{{Name: "local", Destination: l}, {Name: "minio", Destination: m}}
}

func opts(host string, ttl time.Duration) lease.Options {
	return lease.Options{TTL: ttl, Host: host, PID: 4242}
}

func leaseKeys(t *testing.T, d destination.Destination, target string) []string {
	t.Helper()
	objs, err := d.List(context.Background(), target+"/lease/")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range objs {
		keys = append(keys, strings.TrimPrefix(o.Key, target+"/lease/"))
	}
	return keys
}

func TestSecondHolderIsRefusedUntilRelease(t *testing.T) {
	ds := dests(t)
	ctx := context.Background()
	a, err := lease.Acquire(ctx, ds, "orders", "backup", opts("host-a", time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if err := a.Err(d.Name); err != nil {
			t.Fatalf("not held on %s: %v", d.Name, err)
		}
	}
	_, err = lease.Acquire(ctx, ds, "orders", "prune", opts("host-b", time.Minute))
	var held *lease.HeldError
	if !errors.As(err, &held) {
		t.Fatalf("second Acquire: %v, want *HeldError", err)
	}
	if held.Holder.Host != "host-a" || held.Holder.PID != 4242 || held.Holder.Op != "backup" ||
		!strings.Contains(err.Error(), "busy: backup by host-a (pid 4242) since") {
		t.Errorf("holder reported as %+v: %v", held.Holder, err)
	}
	// The refused attempt left nothing that blocks: after Release, it works.
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if a.Context().Err() == nil {
		t.Error("context still live after Release")
	}
	b, err := lease.Acquire(ctx, ds, "orders", "prune", opts("host-b", time.Minute))
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	defer b.Release(ctx)
	for _, d := range ds {
		// Epoch 1 released and removed, epoch 2 held.
		if got := fmt.Sprint(leaseKeys(t, d, "orders")); got != "[0000000002.json]" {
			t.Errorf("%s: lease objects %s", d.Name, got)
		}
	}
	// Another target is independent.
	c, err := lease.Acquire(ctx, ds, "payments", "backup", opts("host-c", time.Minute))
	if err != nil {
		t.Fatalf("other target: %v", err)
	}
	c.Release(ctx)
}

// Many processes racing for a free lease: exactly one wins, on every
// destination; the others name a holder.
func TestRaceHasOneWinner(t *testing.T) {
	ds := dests(t)
	ctx := context.Background()
	const n = 8
	leases := make([]*lease.Lease, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			leases[i], errs[i] = lease.Acquire(ctx, ds, "orders", "backup", opts(fmt.Sprintf("host-%d", i), time.Minute))
		}()
	}
	close(start)
	wg.Wait()
	winners := 0
	for i := range n {
		var held *lease.HeldError
		switch {
		case errs[i] == nil:
			winners++
			for _, d := range ds {
				if err := leases[i].Err(d.Name); err != nil {
					t.Errorf("winner %d: %v", i, err)
				}
			}
			defer leases[i].Release(ctx)
		case errors.As(errs[i], &held):
		default:
			t.Errorf("acquirer %d: %v", i, errs[i])
		}
	}
	if winners != 1 {
		t.Fatalf("%d winners", winners)
	}
}

// A holder that dies (stops renewing, never releases) blocks the target
// until its lease expires; then the next one takes over and the old object
// goes.
func TestExpiredLeaseIsTakenOver(t *testing.T) {
	ds := dests(t)
	ttl := 1500 * time.Millisecond
	dead, cancel := context.WithCancel(context.Background())
	a, err := lease.Acquire(dead, ds, "orders", "backup", opts("host-a", ttl))
	if err != nil {
		t.Fatal(err)
	}
	cancel() // renewal stops with the context: as if the process were killed
	<-a.Context().Done()

	ctx := context.Background()
	if _, err := lease.Acquire(ctx, ds, "orders", "backup", opts("host-b", ttl)); err == nil {
		t.Fatal("took a lease that has not expired yet")
	}
	time.Sleep(ttl + 100*time.Millisecond)
	b, err := lease.Acquire(ctx, ds, "orders", "backup", opts("host-b", ttl))
	if err != nil {
		t.Fatalf("Acquire after expiry: %v", err)
	}
	defer b.Release(ctx)
	for _, d := range ds {
		if got := fmt.Sprint(leaseKeys(t, d, "orders")); got != "[0000000002.json]" {
			t.Errorf("%s: lease objects %s", d.Name, got)
		}
	}
}

// A live holder renews: its lease outlasts many TTLs.
func TestRenewalKeepsLease(t *testing.T) {
	ds := dests(t)
	ctx := context.Background()
	ttl := 3 * time.Second // renewed every second: a loaded machine still makes it
	a, err := lease.Acquire(ctx, ds, "orders", "backup", opts("host-a", ttl))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release(ctx)
	time.Sleep(3 * ttl)
	if err := a.Check(); err != nil {
		t.Fatalf("Check after 3 TTLs: %v", err)
	}
	var held *lease.HeldError
	if _, err := lease.Acquire(ctx, ds, "orders", "backup", opts("host-b", ttl)); !errors.As(err, &held) {
		t.Fatalf("Acquire while renewed: %v, want *HeldError", err)
	}
}

// A holder that was taken over (it stalled past its expiry) finds out at its
// next renewal: its context is cancelled with ErrLost and Check fails.
func TestTakenOverHolderStops(t *testing.T) {
	ds := dests(t)
	ctx := context.Background()
	ttl := 900 * time.Millisecond
	a, err := lease.Acquire(ctx, ds, "orders", "backup", opts("host-a", ttl))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release(ctx)
	// What a taker does once a's lease looks expired: the next epoch.
	rec := `{"format":1,"target":"orders","epoch":2,"op":"prune","host":"host-b","pid":1,"token":"b","expires":"2999-01-01T00:00:00Z"}`
	if err := ds[1].PutIfAbsent(ctx, "orders/lease/0000000002.json", []byte(rec)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.Context().Done():
	case <-time.After(time.Minute): // it renews every ttl/3: a hang, not a slow machine
		t.Fatal("holder did not notice the takeover")
	}
	if err := a.Check(); !errors.Is(err, lease.ErrLost) || !strings.Contains(err.Error(), "host-b") {
		t.Errorf("Check = %v, want ErrLost naming the new holder", err)
	}
	// Release leaves the taker's lease alone.
	a.Release(ctx)
	var held *lease.HeldError
	if _, err := lease.Acquire(ctx, ds[1:], "orders", "backup", opts("host-c", ttl)); !errors.As(err, &held) || held.Holder.Host != "host-b" {
		t.Errorf("after the loser's Release: %v, want held by host-b", err)
	}
}

// An unreachable destination does not stop the lease on the others; Err
// says which one is not leased.
func TestUnreachableDestination(t *testing.T) {
	ds := dests(t)
	down := backup.Destination{Name: "down", Destination: failing{errors.New("connection refused")}}
	ctx := context.Background()
	a, err := lease.Acquire(ctx, append(ds, down), "orders", "backup", opts("host-a", time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release(ctx)
	if err := a.Err("down"); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("Err(down) = %v", err)
	}
	if err := a.Err("local"); err != nil {
		t.Errorf("Err(local) = %v", err)
	}
}

// Lease objects are not backups: list shows neither backups nor debris.
func TestLeaseIsNotABackup(t *testing.T) {
	ds := dests(t)
	ctx := context.Background()
	a, err := lease.Acquire(ctx, ds, "orders", "backup", opts("host-a", time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release(ctx)
	for _, d := range ds {
		l, err := catalog.List(ctx, d, "orders")
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Backups)+len(l.Debris) != 0 {
			t.Errorf("%s: lease listed as %+v", d.Name, l)
		}
	}
}

type failing struct{ err error }

func (f failing) Put(context.Context, string, io.Reader) error               { return f.err }
func (f failing) Get(context.Context, string) (io.ReadCloser, error)         { return nil, f.err }
func (f failing) List(context.Context, string) ([]destination.Object, error) { return nil, f.err }
func (f failing) Delete(context.Context, string) error                       { return f.err }
func (f failing) PutIfAbsent(context.Context, string, []byte) error          { return f.err }
func (f failing) Stat(context.Context, string) (destination.Object, error) {
	return destination.Object{}, f.err
}

// lostReply stores a lease record and then reports the caller's cancel, as a
// store does whose reply is lost when the process stops mid-request.
type lostReply struct {
	destination.Destination
	cancel context.CancelFunc
}

func (l lostReply) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	if err := l.Destination.PutIfAbsent(context.WithoutCancel(ctx), key, data); err != nil {
		return err
	}
	l.cancel()
	return context.Canceled
}

// An acquire cancelled after the store took its record leaves nothing that
// blocks the next holder.
func TestCancelledAcquireLeavesNoLease(t *testing.T) {
	ds := dests(t)
	for i, d := range ds {
		t.Run(d.Name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			target := fmt.Sprintf("orders-%d", i)
			lost := []backup.Destination{{Name: d.Name, Destination: lostReply{d.Destination, cancel}}}
			if _, err := lease.Acquire(ctx, lost, target, "prune", opts("host-a", time.Hour)); !errors.Is(err, context.Canceled) {
				t.Fatalf("Acquire: %v, want context.Canceled", err)
			}
			b, err := lease.Acquire(context.Background(), []backup.Destination{d}, target, "backup", opts("host-b", time.Hour))
			if err != nil {
				t.Fatalf("next holder: %v", err)
			}
			b.Release(context.Background())
		})
	}
}
