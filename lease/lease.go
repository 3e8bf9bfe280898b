// Package lease keeps two backproof processes, on one machine or on many,
// from backing up or pruning the same target at the same time. The lease of
// a target is an object on each of its destinations:
//
//	<target>/lease/<epoch>.json   holder host, pid, token, op, expiry
//
// Only the object with the highest epoch counts. Epochs are created with
// Destination.PutIfAbsent (S3: If-None-Match: *; local: link(2)), so of any
// number of processes racing for the same epoch exactly one wins:
//
//   - free (no object, or the highest one released or expired): create
//     epoch highest+1. Whoever loses the race finds the winner's live lease.
//   - taken: the highest epoch belongs to a live holder, who renews it
//     (rewrites its own object with a later expiry) every TTL/3.
//   - a holder that died stops renewing; once its expiry passes the next
//     process takes over by creating the next epoch, then deletes the older
//     ones. Nothing is ever replaced in place, so a takeover needs no
//     compare-and-swap (If-Match, which not every S3-compatible store gets
//     right) and two takers cannot both win.
//   - released: the holder marks its object released; the highest epoch is
//     never deleted, so epochs only grow and a number is never reused.
//
// A holder that was stalled past its expiry may have been taken over: each
// renewal lists the epochs before and after rewriting, and a holder that is
// no longer the highest, or could not renew before its expiry, has lost the
// lease: the lease's context is cancelled and the operation stops. Between
// two renewals (TTL/3) a stalled holder cannot know; operations that delete
// call Check before each deletion. Expiry is compared across machines, so
// their clocks must agree to well within TTL*2/3 (NTP).
package lease

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/backproof/backproof/backup"
	"github.com/backproof/backproof/destination"
)

// DefaultTTL is how long a lease lasts without renewal: how long a target
// stays blocked after its holder was killed.
const DefaultTTL = 3 * time.Minute

// Dir is the folder of a target's lease objects, next to its backup ids.
const Dir = "lease"

// ErrLost is the cause of a lease context cancelled because the lease was
// taken over or could not be renewed in time.
var ErrLost = errors.New("lease lost")

// Options tune Acquire.
type Options struct {
	TTL  time.Duration    // 0: DefaultTTL
	Now  func() time.Time // nil: time.Now
	Log  *slog.Logger
	Host string // holder's host name; "": os.Hostname
	PID  int    // holder's process id; 0: os.Getpid
}

// Record is what a lease object holds.
type Record struct {
	Format   int       `json:"format"`
	Target   string    `json:"target"`
	Epoch    int64     `json:"epoch"`
	Op       string    `json:"op"` // backup | prune ...
	Host     string    `json:"host"`
	PID      int       `json:"pid"`
	Token    string    `json:"token"` // random per Acquire: tells holders apart
	Started  time.Time `json:"started"`
	Renewed  time.Time `json:"renewed"`
	Expires  time.Time `json:"expires"`
	Released bool      `json:"released,omitempty"`
}

const recordFormat = 1

// HeldError says another live holder has the lease. Its message leaves the
// target to the caller's context.
type HeldError struct {
	Target      string
	Destination string
	Holder      Record
}

func (e *HeldError) Error() string {
	h := e.Holder
	return fmt.Sprintf("busy: %s by %s (pid %d) since %s; its lease on %s lasts until %s unless renewed",
		h.Op, h.Host, h.PID, h.Started.UTC().Format(time.RFC3339), e.Destination, h.Expires.UTC().Format(time.RFC3339))
}

// Lease is a target's lease, held on the destinations Acquire could reach.
type Lease struct {
	target string
	ttl    time.Duration
	now    func() time.Time
	log    *slog.Logger
	rec    Record // Epoch and Expires vary per destination

	ctx    context.Context
	cancel context.CancelCauseFunc
	stop   chan struct{}
	done   chan struct{}

	mu     sync.Mutex
	slots  []*slot
	failed map[string]error // destination -> why it is not leased
}

type slot struct {
	name    string
	d       destination.Destination
	epoch   int64
	expires time.Time // of the last successful write
}

// Acquire takes target's lease on every destination in dests for op. If a
// live holder has it on any of them, Acquire releases what it took and
// returns a *HeldError naming the holder. A destination where the lease
// could not be taken for another reason (unreachable, a store ignoring
// conditional writes) does not stop the others: Err tells which.
//
// The lease is renewed in the background until Release. Run the operation
// under Context, which is cancelled if the lease is lost.
func Acquire(ctx context.Context, dests []backup.Destination, target, op string, opts Options) (*Lease, error) {
	l := &Lease{
		target: target,
		ttl:    opts.TTL,
		now:    opts.Now,
		log:    opts.Log,
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		failed: map[string]error{},
	}
	if l.ttl <= 0 {
		l.ttl = DefaultTTL
	}
	if l.now == nil {
		l.now = time.Now
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	host, pid := opts.Host, opts.PID
	if host == "" {
		host, _ = os.Hostname()
	}
	if pid == 0 {
		pid = os.Getpid()
	}
	var tok [12]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return nil, err
	}
	l.rec = Record{Format: recordFormat, Target: target, Op: op, Host: host, PID: pid,
		Token: hex.EncodeToString(tok[:]), Started: l.now().UTC()}

	// One order for everyone: two processes each holding a part of the
	// other's set would both give up.
	dests = slices.Clone(dests)
	slices.SortFunc(dests, func(a, b backup.Destination) int { return strings.Compare(a.Name, b.Name) })
	for _, d := range dests {
		s, err := l.acquire(ctx, d)
		var held *HeldError
		switch {
		case errors.As(err, &held):
			l.releaseAll(ctx)
			return nil, held
		case err != nil:
			// The store may have taken our record even so (a reply lost
			// to a cancel or a timeout): it would block others for a TTL.
			l.releaseIfOurs(ctx, d)
			if ctx.Err() != nil {
				l.releaseAll(ctx)
				return nil, ctx.Err()
			}
			l.failed[d.Name] = err
			l.log.WarnContext(ctx, "cannot take the lease", "target", target, "destination", d.Name, "error", err)
		default:
			l.slots = append(l.slots, s)
		}
	}
	l.ctx, l.cancel = context.WithCancelCause(ctx)
	go l.renewLoop()
	return l, nil
}

// Target is the leased target.
func (l *Lease) Target() string { return l.target }

// Err returns nil if the lease is held on the destination, else why not.
func (l *Lease) Err(dest string) error {
	if err, ok := l.failed[dest]; ok {
		return fmt.Errorf("no lease on %s: %w", dest, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.slots {
		if s.name == dest {
			return nil
		}
	}
	return fmt.Errorf("no lease on %s", dest)
}

// Context is done once the lease is lost or released.
func (l *Lease) Context() context.Context { return l.ctx }

// Check returns an error once the lease is lost, or when a renewal is overdue
// and this process can no longer be sure it still holds it.
func (l *Lease) Check() error {
	if l.ctx.Err() != nil {
		return context.Cause(l.ctx)
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.slots {
		if !now.Before(s.expires) {
			return fmt.Errorf("%w: lease on %s expired at %s without renewal", ErrLost, s.name, s.expires.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

// Release stops renewing and marks the lease released on every destination
// where this process still holds it.
func (l *Lease) Release(ctx context.Context) error {
	select {
	case <-l.stop:
		return nil // released already
	default:
	}
	close(l.stop)
	<-l.done
	err := l.releaseAll(ctx)
	l.cancel(errors.New("lease released"))
	return err
}

func (l *Lease) releaseAll(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	l.mu.Lock()
	slots := slices.Clone(l.slots)
	l.mu.Unlock()
	var errs []error
	for _, s := range slots {
		top, _, err := l.highest(ctx, s.d)
		if err != nil {
			errs = append(errs, fmt.Errorf("release lease on %s: %w", s.name, err))
			continue
		}
		if top != s.epoch {
			continue // taken over: not ours to touch
		}
		rec := l.rec
		rec.Epoch, rec.Renewed, rec.Expires, rec.Released = s.epoch, l.now().UTC(), l.now().UTC(), true
		if err := l.write(ctx, s.d, rec); err != nil {
			errs = append(errs, fmt.Errorf("release lease on %s: %w", s.name, err))
		}
	}
	return errors.Join(errs...)
}

// releaseIfOurs marks released the newest record on d when it is ours:
// for a destination whose acquire failed, where it may be ours anyway.
func (l *Lease) releaseIfOurs(ctx context.Context, d backup.Destination) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	top, cur, err := l.highest(ctx, d)
	if err != nil || cur == nil || cur.Token != l.rec.Token || cur.Released {
		return
	}
	rec := *cur
	rec.Renewed, rec.Expires, rec.Released = l.now().UTC(), l.now().UTC(), true
	rec.Epoch = top
	if err := l.write(ctx, d, rec); err != nil {
		l.log.WarnContext(ctx, "cannot release a lease taken while its acquire failed", "target", l.target, "destination", d.Name, "error", err)
	}
}

// acquire takes the lease on one destination.
func (l *Lease) acquire(ctx context.Context, d backup.Destination) (*slot, error) {
	for range 5 {
		top, cur, err := l.highest(ctx, d)
		if err != nil {
			return nil, err
		}
		if cur != nil && cur.Token == l.rec.Token {
			// The same store configured twice: already ours.
			return &slot{name: d.Name, d: d, epoch: top, expires: cur.Expires}, nil
		}
		if cur != nil && !cur.Released && l.now().Before(cur.Expires) {
			return nil, &HeldError{Target: l.target, Destination: d.Name, Holder: *cur}
		}
		rec := l.rec
		rec.Epoch, rec.Renewed, rec.Expires = top+1, l.now().UTC(), l.now().Add(l.ttl).UTC()
		data, err := json.Marshal(rec)
		if err != nil {
			return nil, err
		}
		err = d.PutIfAbsent(ctx, key(l.target, rec.Epoch), data)
		if errors.Is(err, destination.ErrExists) {
			continue // another process won this epoch: look again
		}
		if err != nil {
			return nil, err
		}
		if cur != nil && !cur.Released {
			l.log.WarnContext(ctx, "took over an expired lease", "target", l.target, "destination", d.Name,
				"holder_host", cur.Host, "holder_pid", cur.PID, "holder_op", cur.Op, "expired", cur.Expires)
		}
		l.removeOlder(ctx, d, rec.Epoch)
		return &slot{name: d.Name, d: d, epoch: rec.Epoch, expires: rec.Expires}, nil
	}
	return nil, errors.New("lease: too much contention")
}

// removeOlder deletes the epochs below ours; a failure only leaves garbage
// that the next takeover removes.
func (l *Lease) removeOlder(ctx context.Context, d backup.Destination, epoch int64) {
	epochs, err := l.epochs(ctx, d)
	if err != nil {
		return
	}
	for _, e := range epochs {
		if e < epoch {
			if err := d.Delete(ctx, key(l.target, e)); err != nil {
				l.log.DebugContext(ctx, "cannot remove an old lease", "destination", d.Name, "epoch", e, "error", err)
			}
		}
	}
}

func (l *Lease) renewLoop() {
	defer close(l.done)
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-l.ctx.Done():
			return
		case <-t.C:
		}
		if err := l.renew(); err != nil {
			l.log.ErrorContext(l.ctx, "lease lost", "target", l.target, "error", err)
			l.cancel(err)
			return
		}
	}
}

// renew rewrites every held lease object with a later expiry. It returns an
// error (wrapping ErrLost) only when the lease is lost; a renewal that failed
// but has time left is tried again at the next tick.
func (l *Lease) renew() error {
	l.mu.Lock()
	slots := slices.Clone(l.slots)
	l.mu.Unlock()
	for _, s := range slots {
		ctx, cancel := context.WithTimeout(l.ctx, l.ttl/3)
		expires, err := l.renewOne(ctx, s)
		cancel()
		var lost *lostError
		switch {
		case errors.As(err, &lost):
			return fmt.Errorf("%w on %s: %s", ErrLost, s.name, lost.msg)
		case err != nil:
			if !l.now().Before(s.expires) {
				return fmt.Errorf("%w on %s: not renewed before it expired: %v", ErrLost, s.name, err)
			}
			l.log.WarnContext(l.ctx, "cannot renew the lease, will retry", "target", l.target, "destination", s.name, "error", err)
		default:
			l.mu.Lock()
			s.expires = expires
			l.mu.Unlock()
		}
	}
	return nil
}

type lostError struct{ msg string }

func (e *lostError) Error() string { return e.msg }

func (l *Lease) renewOne(ctx context.Context, s *slot) (time.Time, error) {
	if err := l.stillOurs(ctx, s); err != nil {
		return time.Time{}, err
	}
	rec := l.rec
	rec.Epoch, rec.Renewed, rec.Expires = s.epoch, l.now().UTC(), l.now().Add(l.ttl).UTC()
	if err := l.write(ctx, s.d, rec); err != nil {
		return time.Time{}, err
	}
	// A takeover between the look and the write would have been overwritten
	// in our epoch, not in the taker's: look again to find out.
	if err := l.stillOurs(ctx, s); err != nil {
		return time.Time{}, err
	}
	return rec.Expires, nil
}

func (l *Lease) stillOurs(ctx context.Context, s *slot) error {
	top, cur, err := l.highest(ctx, s.d)
	if err != nil {
		return err
	}
	switch {
	case top != s.epoch && cur != nil:
		return &lostError{fmt.Sprintf("taken over by %s (pid %d) for %s", cur.Host, cur.PID, cur.Op)}
	case top != s.epoch:
		return &lostError{"taken over"}
	case cur == nil || cur.Token != l.rec.Token:
		return &lostError{"lease object changed hands"}
	}
	return nil
}

func (l *Lease) write(ctx context.Context, d destination.Destination, rec Record) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return d.Put(ctx, key(l.target, rec.Epoch), bytes.NewReader(data))
}

// highest returns the highest epoch on d and its record (nil when there is
// none). A record that cannot be parsed counts as expired TTL after it was
// written.
func (l *Lease) highest(ctx context.Context, d destination.Destination) (int64, *Record, error) {
	for range 3 {
		epochs, err := l.epochs(ctx, d)
		if err != nil || len(epochs) == 0 {
			return 0, nil, err
		}
		top := epochs[len(epochs)-1]
		rec, err := l.read(ctx, d, top)
		if errors.Is(err, destination.ErrNotFound) {
			continue // cleaned up meanwhile
		}
		if err != nil {
			return 0, nil, err
		}
		return top, rec, nil
	}
	return 0, nil, errors.New("lease objects keep vanishing")
}

func (l *Lease) read(ctx context.Context, d destination.Destination, epoch int64) (*Record, error) {
	k := key(l.target, epoch)
	rc, err := d.Get(ctx, k)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 64<<10))
	if err != nil {
		return nil, err
	}
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil || rec.Epoch != epoch {
		obj, serr := d.Stat(ctx, k)
		if serr != nil {
			return nil, serr
		}
		return &Record{Epoch: epoch, Host: "?", Op: "?", Started: obj.ModTime, Expires: obj.ModTime.Add(l.ttl)}, nil
	}
	return &rec, nil
}

// epochs lists the target's lease epochs in ascending order.
func (l *Lease) epochs(ctx context.Context, d destination.Destination) ([]int64, error) {
	prefix := l.target + "/" + Dir + "/"
	objs, err := d.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	var out []int64
	for _, o := range objs {
		name := strings.TrimPrefix(o.Key, prefix)
		num, ok := strings.CutSuffix(name, ".json")
		if !ok || path.Base(name) != name {
			continue
		}
		if e, err := strconv.ParseInt(num, 10, 64); err == nil && e > 0 {
			out = append(out, e)
		}
	}
	slices.Sort(out)
	return out, nil
}

func key(target string, epoch int64) string {
	return fmt.Sprintf("%s/%s/%010d.json", target, Dir, epoch)
}
