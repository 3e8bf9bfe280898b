// Package local stores backups in a directory on a local or mounted
// filesystem. Objects are files under the root; writes go to a temporary file
// that is fsynced and renamed into place, so a reader sees a whole object or
// none.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/backproof/backproof/destination"
)

// tmpDir holds objects being written. It is never listed. Each temporary file
// is flock'ed while its writer lives, so a later process can tell the debris
// of a killed writer from a write in progress.
const tmpDir = ".tmp"

// Store is a destination.Destination rooted at a directory.
type Store struct {
	root string
}

var _ destination.Destination = (*Store)(nil)

// New opens the store rooted at dir, which must already exist: creating it
// would let an unmounted volume fill the filesystem beneath it unnoticed.
// Temporary files left by killed writers are removed.
func New(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("local destination %s: %w", dir, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("local destination %s does not exist: create it first", abs)
		}
		return nil, fmt.Errorf("local destination %s: %w", abs, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("local destination %s is not a directory", abs)
	}
	s := &Store{root: abs}
	if err := s.sweepTemp(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Store) String() string { return "local:" + s.root }

func (s *Store) path(key string) (string, error) {
	if err := destination.ValidateKey(key); err != nil {
		return "", err
	}
	if key == tmpDir || strings.HasPrefix(key, tmpDir+"/") {
		return "", &destination.KeyError{Key: key}
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

// Put writes r to a locked temporary file, fsyncs it, renames it into place
// and fsyncs the directories up to the root.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) (err error) {
	final, err := s.path(key)
	if err != nil {
		return err
	}
	tmpRoot := filepath.Join(s.root, tmpDir)
	if err := os.MkdirAll(tmpRoot, 0o700); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	f, err := os.CreateTemp(tmpRoot, "put-*")
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return fmt.Errorf("put %s: lock temporary file: %w", key, err)
	}
	if err := copyToFile(f, destination.ContextReader(ctx, r)); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("put %s: fsync: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	dir := filepath.Dir(final)
	if err := inDir(dir, func() error { return os.Rename(f.Name(), final) }); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	// The lock goes with the close; the file is already in place.
	if err := f.Close(); err != nil {
		return fmt.Errorf("put %s: close: %w", key, err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if err := syncDir(d); err != nil {
			return fmt.Errorf("put %s: fsync %s: %w", key, d, err)
		}
		if d == s.root {
			return nil
		}
	}
}

// PutIfAbsent writes data to a locked temporary file, fsyncs it and links it
// under key: link(2) fails with EEXIST if the name exists, so the object
// appears whole and only if it was absent, also between processes sharing
// the directory (NFS included).
func (s *Store) PutIfAbsent(ctx context.Context, key string, data []byte) (err error) {
	final, err := s.path(key)
	if err != nil {
		return err
	}
	tmpRoot := filepath.Join(s.root, tmpDir)
	if err := os.MkdirAll(tmpRoot, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", key, err)
	}
	f, err := os.CreateTemp(tmpRoot, "create-*")
	if err != nil {
		return fmt.Errorf("create %s: %w", key, err)
	}
	// The temporary name goes in every case: on success the object lives on
	// under its link.
	defer func() {
		f.Close()
		os.Remove(f.Name())
	}()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return fmt.Errorf("create %s: lock temporary file: %w", key, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("create %s: %w", key, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("create %s: fsync: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("create %s: %w", key, err)
	}
	dir := filepath.Dir(final)
	if err := inDir(dir, func() error { return os.Link(f.Name(), final) }); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create %s: %w", key, destination.ErrExists)
		}
		return fmt.Errorf("create %s: %w", key, err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if err := syncDir(d); err != nil {
			return fmt.Errorf("create %s: fsync %s: %w", key, d, err)
		}
		if d == s.root {
			return nil
		}
	}
}

func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, s.translate("get", key, err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("get %s: %w", key, destination.ErrNotFound)
	}
	return f, nil
}

func (s *Store) Stat(ctx context.Context, key string) (destination.Object, error) {
	p, err := s.path(key)
	if err != nil {
		return destination.Object{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return destination.Object{}, s.translate("stat", key, err)
	}
	if !fi.Mode().IsRegular() {
		return destination.Object{}, fmt.Errorf("stat %s: %w", key, destination.ErrNotFound)
	}
	return destination.Object{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// List walks only the directory the prefix names, not the whole tree.
func (s *Store) List(ctx context.Context, prefix string) ([]destination.Object, error) {
	start := s.root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = filepath.Join(s.root, filepath.FromSlash(prefix[:i]))
		if !strings.HasPrefix(start, s.root) {
			return nil, &destination.KeyError{Key: prefix}
		}
	}
	var objs []destination.Object
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == start {
				return fs.SkipAll
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			if key == tmpDir {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(key, prefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) { // deleted while listing
				return nil
			}
			return err
		}
		objs = append(objs, destination.Object{Key: key, Size: fi.Size(), ModTime: fi.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %q in %s: %w", prefix, s.root, err)
	}
	sort.Slice(objs, func(i, j int) bool { return objs[i].Key < objs[j].Key })
	return objs, nil
}

// Delete removes the file, then any directories it leaves empty.
func (s *Store) Delete(ctx context.Context, key string) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	for d := filepath.Dir(p); d != s.root && strings.HasPrefix(d, s.root); d = filepath.Dir(d) {
		if os.Remove(d) != nil { // not empty, or gone
			break
		}
	}
	return nil
}

// inDir creates dir and runs place, which puts a file into it. Delete removes
// directories it leaves empty, so a concurrent Delete of a sibling can remove
// dir, or a parent, between the two steps: then both run again.
func inDir(dir string, place func() error) error {
	for attempt := 0; ; attempt++ {
		err := os.MkdirAll(dir, 0o750)
		if err == nil {
			err = place()
		}
		if err == nil || !errors.Is(err, fs.ErrNotExist) || attempt == 20 {
			return err
		}
	}
}

// sweepTemp removes temporary files whose writer is gone (no lock held).
func (s *Store) sweepTemp() error {
	dir := filepath.Join(s.root, tmpDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("local destination %s: %w", s.root, err)
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			os.Remove(p)
		}
		f.Close()
	}
	return nil
}

func (s *Store) translate(op, key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("%s %s: %w", op, key, destination.ErrNotFound)
	}
	return fmt.Errorf("%s %s: %w", op, key, err)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
