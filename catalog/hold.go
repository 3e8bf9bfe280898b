package catalog

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/backproof/backproof/destination"
)

// A hold marks a backup as being read (verified or restored):
// <target>/<backup-id>/hold-<expiry>-<random>.json. Prune does not delete a
// backup with a hold that has not expired. The expiry is in the name so that
// a listing is enough to judge a hold.
const holdPrefix = "hold-"

// ErrPruned means a backup's manifest went away while it was being read:
// prune got there first. It says nothing about the backup's quality.
var ErrPruned = errors.New("backup was pruned meanwhile")

// PutHold places a hold on a backup until expiry and returns a function that
// lifts it. After placing it, it checks that the manifest is still there:
// prune deletes the manifest first and then looks for holds, so one of the
// two always sees the other. A manifest already gone is ErrPruned.
func PutHold(ctx context.Context, d destination.Destination, target, id string, expiry time.Time) (release func(context.Context), err error) {
	var b [5]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	name := holdPrefix + expiry.UTC().Format(idTimeLayout) + "-" + strings.ToLower(base32.StdEncoding.EncodeToString(b[:])) + ".json"
	host, _ := os.Hostname()
	body, _ := json.Marshal(map[string]any{"host": host, "pid": os.Getpid(), "expires": expiry.UTC()})
	key := Key(target, id, name)
	if err := d.Put(ctx, key, bytes.NewReader(body)); err != nil {
		return nil, fmt.Errorf("hold %s/%s: %w", target, id, err)
	}
	release = func(ctx context.Context) { d.Delete(ctx, key) }
	if _, err := d.Stat(ctx, Key(target, id, ManifestName)); err != nil {
		release(ctx)
		if errors.Is(err, destination.ErrNotFound) {
			return nil, fmt.Errorf("%s/%s: %w", target, id, ErrPruned)
		}
		return nil, err
	}
	return release, nil
}

// HeldUntil returns the latest expiry of a backup's holds that have not
// expired at now; zero when there is none.
func HeldUntil(ctx context.Context, d destination.Destination, target, id string, now time.Time) (time.Time, error) {
	objs, err := d.List(ctx, Key(target, id, holdPrefix))
	if err != nil {
		return time.Time{}, err
	}
	var until time.Time
	for _, o := range objs {
		name := strings.TrimPrefix(o.Key, Key(target, id, holdPrefix))
		ts, _, ok := strings.Cut(name, "-")
		if !ok {
			continue
		}
		t, err := time.Parse(idTimeLayout, ts)
		if err == nil && t.After(now) && t.After(until) {
			until = t
		}
	}
	return until, nil
}
