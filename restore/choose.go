package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/crypt"
	"github.com/backproof/backproof/destination"
)

// Source is a destination a backup may be read from.
type Source struct {
	Name  string
	Store destination.Destination
}

// Copy is one destination's copy of a backup.
type Copy struct {
	Source   Source
	Manifest *catalog.Manifest
}

// Find locates a backup of target: id, or the latest committed one when id
// is empty. It returns every destination's intact-looking copy of it, in
// the order of sources; the first is where the backup was chosen. With
// several sources and no id, the latest is the newest id on any of them.
// With an id it reads one manifest per source and lists nothing.
func Find(ctx context.Context, sources []Source, target, id string) ([]Copy, error) {
	var errs []error
	if id == "" {
		var err error
		if id, errs, err = latest(ctx, sources, target); err != nil {
			return nil, err
		}
	}
	var copies []Copy
	var invalid []error
	for _, s := range sources {
		m, err := catalog.ReadManifest(ctx, s.Store, target, id)
		switch {
		case err == nil:
			copies = append(copies, Copy{Source: s, Manifest: m})
		case errors.Is(err, destination.ErrNotFound):
		case errors.Is(err, catalog.ErrInvalid):
			invalid = append(invalid, fmt.Errorf("%s: %w: %v", s.Name, ErrChecksumMismatch, err))
		default:
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			errs = append(errs, fmt.Errorf("%s: %w", s.Name, err))
		}
	}
	if len(copies) == 0 {
		if len(invalid) > 0 && len(errs) == 0 {
			return nil, fmt.Errorf("backup %s of %s: no readable manifest: %w", id, target, errors.Join(invalid...))
		}
		return nil, errors.Join(append([]error{fmt.Errorf("backup %s of %s not found", id, target)}, append(errs, invalid...)...)...)
	}
	return copies, nil
}

// latest returns the newest backup id on any source whose manifest is valid
// and whose dates can be believed, reading manifests newest first until one
// is. Sources that could not be read are returned as errs; none usable is
// an error.
func latest(ctx context.Context, sources []Source, target string) (id string, errs []error, err error) {
	type cand struct {
		src Source
		b   *catalog.Backup
	}
	var cands []cand
	for _, s := range sources {
		l, err := catalog.List(ctx, s.Store, target)
		if err != nil {
			errs = append(errs, fmt.Errorf("list %s on %s: %w", target, s.Name, err))
			continue
		}
		for i := range l.Backups {
			cands = append(cands, cand{s, &l.Backups[i]})
		}
	}
	slices.SortStableFunc(cands, func(a, b cand) int { return strings.Compare(b.b.ID, a.b.ID) })
	now := time.Now()
	failed := map[string]bool{} // sources that could not be read: skipped
	for _, c := range cands {
		if failed[c.src.Name] {
			continue
		}
		if err := c.b.Load(ctx, c.src.Store, target); err != nil {
			if ctx.Err() != nil {
				return "", nil, ctx.Err()
			}
			errs = append(errs, fmt.Errorf("%s: %w", c.src.Name, err))
			failed[c.src.Name] = true
			continue
		}
		// A backup dated in the future or whose manifest disagrees with
		// its id is never the latest: name it with --backup.
		if c.b.Summary != nil && catalog.TimeProblem(*c.b, now) == "" {
			return c.b.ID, errs, nil
		}
	}
	return "", nil, errors.Join(append([]error{fmt.Errorf("no committed backup of %s found", target)}, errs...)...)
}

// Progress starts metering a transfer of total bytes, described by what.
// The bytes are written to the returned writer, which is closed at the end.
type Progress func(what string, total int64) io.WriteCloser

// IsBad reports whether err says a stored copy is corrupt or incomplete, as
// opposed to a destination that could not be read.
func IsBad(err error) bool {
	return errors.Is(err, ErrChecksumMismatch) || errors.Is(err, ErrMissing) || errors.Is(err, ErrUndecodable)
}

// KeyProblem reports whether err says the backup cannot be decrypted with the
// identities at hand: none configured, or none that matches.
func KeyProblem(err error) bool {
	return errors.Is(err, ErrNoIdentity) || errors.Is(err, crypt.ErrNoMatchingKey)
}

// SpoolFirstIntact spools the first copy whose bytes match its manifest into
// dir, decompressed (Spool), saying in the log when a copy is skipped. It
// returns the copy used and the spooled file. A corrupt copy is never used;
// when every copy is corrupt the error satisfies IsBad. progress, when not
// nil, meters each download.
func SpoolFirstIntact(ctx context.Context, log *slog.Logger, copies []Copy, ids *crypt.Identities, dir string, progress Progress) (Copy, string, error) {
	var path string
	c, err := firstIntact(ctx, log, copies, progress, func(c Copy, w io.Writer) (err error) {
		path, err = Spool(ctx, c.Source.Store, c.Manifest, c.Manifest.Artifacts[0], ids, dir, w)
		return err
	})
	return c, path, err
}

// SpoolStoredFirstIntact is SpoolFirstIntact with the stored bytes spooled
// as they are (SpoolStored), to be decompressed into the restore.
func SpoolStoredFirstIntact(ctx context.Context, log *slog.Logger, copies []Copy, ids *crypt.Identities, dir string, progress Progress) (Copy, *Spooled, error) {
	var sp *Spooled
	c, err := firstIntact(ctx, log, copies, progress, func(c Copy, w io.Writer) (err error) {
		sp, err = SpoolStored(ctx, c.Source.Store, c.Manifest, c.Manifest.Artifacts[0], ids, dir, w)
		return err
	})
	return c, sp, err
}

func firstIntact(ctx context.Context, log *slog.Logger, copies []Copy, progress Progress, spool func(Copy, io.Writer) error) (Copy, error) {
	var errs []error
	for i, c := range copies {
		a := c.Manifest.Artifacts[0]
		var w io.WriteCloser
		if progress != nil {
			w = progress("download from "+c.Source.Name, a.Size)
		}
		var err error
		if w != nil {
			err = spool(c, w)
			w.Close()
		} else {
			err = spool(c, nil)
		}
		if err == nil {
			return c, nil
		}
		if ctx.Err() != nil || KeyProblem(err) {
			return c, err // another copy of the same backup needs the same key
		}
		errs = append(errs, fmt.Errorf("copy on %s: %w", c.Source.Name, err))
		if i+1 < len(copies) {
			log.WarnContext(ctx, "copy unusable, trying the next destination", "backup_id", c.Manifest.ID,
				"destination", c.Source.Name, "next", copies[i+1].Source.Name, "err", err)
		}
	}
	return Copy{}, errors.Join(errs...)
}
