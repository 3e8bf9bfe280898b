// Package local stores backups in a directory on a local or mounted
// filesystem. Objects are files under the root; writes go to a temporary file
// that is fsynced and renamed into place, so a reader sees a whole object or
// none.
package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
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

// Store is a destination.Destination rooted at a directory. Every file
// operation goes through an os.Root: no key, symlink or rename can reach a
// file outside the directory, and only regular files are ever opened.
type Store struct {
	root *os.Root
	dir  string // the root's absolute path, for messages
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
	root, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("local destination %s: %w", abs, err)
	}
	s := &Store{root: root, dir: abs}
	if err := s.sweepTemp(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Store) String() string { return "local:" + s.dir }

// name validates key and returns it as a path within the root.
func (s *Store) name(key string) (string, error) {
	if err := destination.ValidateKey(key); err != nil {
		return "", err
	}
	if key == tmpDir || strings.HasPrefix(key, tmpDir+"/") {
		return "", &destination.KeyError{Key: key}
	}
	return key, nil
}

// createTemp creates a locked temporary file in .tmp.
func (s *Store) createTemp(kind string) (*os.File, string, error) {
	if err := s.root.MkdirAll(tmpDir, 0o700); err != nil {
		return nil, "", err
	}
	for {
		var b [8]byte
		rand.Read(b[:])
		name := tmpDir + "/" + kind + "-" + hex.EncodeToString(b[:])
		f, err := s.root.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			s.root.Remove(name)
			return nil, "", fmt.Errorf("lock temporary file: %w", err)
		}
		return f, name, nil
	}
}

// Put writes r to a locked temporary file, fsyncs it, renames it into place
// and fsyncs the directories up to the root.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) (err error) {
	final, err := s.name(key)
	if err != nil {
		return err
	}
	f, tmp, err := s.createTemp("put")
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			s.root.Remove(tmp)
		}
	}()
	if err := copyToFile(f, destination.ContextReader(ctx, r)); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("put %s: fsync: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	dir := path.Dir(final)
	if err := s.inDir(dir, func() error { return s.root.Rename(tmp, final) }); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	// The lock goes with the close; the file is already in place.
	if err := f.Close(); err != nil {
		return fmt.Errorf("put %s: close: %w", key, err)
	}
	if err := s.syncDirs(dir); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// PutIfAbsent writes data to a locked temporary file, fsyncs it and links it
// under key: link(2) fails with EEXIST if the name exists, so the object
// appears whole and only if it was absent, also between processes sharing
// the directory (NFS included).
func (s *Store) PutIfAbsent(ctx context.Context, key string, data []byte) (err error) {
	final, err := s.name(key)
	if err != nil {
		return err
	}
	f, tmp, err := s.createTemp("create")
	if err != nil {
		return fmt.Errorf("create %s: %w", key, err)
	}
	// The temporary name goes in every case: on success the object lives on
	// under its link.
	defer func() {
		f.Close()
		s.root.Remove(tmp)
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("create %s: %w", key, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("create %s: fsync: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("create %s: %w", key, err)
	}
	dir := path.Dir(final)
	if err := s.inDir(dir, func() error { return s.root.Link(tmp, final) }); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create %s: %w", key, destination.ErrExists)
		}
		return fmt.Errorf("create %s: %w", key, err)
	}
	if err := s.syncDirs(dir); err != nil {
		return fmt.Errorf("create %s: %w", key, err)
	}
	return nil
}

// syncDirs fsyncs dir and its parents up to the root.
func (s *Store) syncDirs(dir string) error {
	for d := dir; ; d = path.Dir(d) {
		f, err := s.root.Open(d)
		if err != nil {
			return fmt.Errorf("fsync %s: %w", d, err)
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return fmt.Errorf("fsync %s: %w", d, err)
		}
		if d == "." {
			return nil
		}
	}
}

// Get opens the object. O_NONBLOCK keeps a FIFO or device planted under
// the key from blocking the open; anything but a regular file is refused.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	name, err := s.name(key)
	if err != nil {
		return nil, err
	}
	f, err := s.root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, s.translate("get", key, err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("get %s: not a regular file: %w", key, destination.ErrNotFound)
	}
	return f, nil
}

func (s *Store) Stat(ctx context.Context, key string) (destination.Object, error) {
	name, err := s.name(key)
	if err != nil {
		return destination.Object{}, err
	}
	fi, err := s.root.Stat(name)
	if err != nil {
		return destination.Object{}, s.translate("stat", key, err)
	}
	if !fi.Mode().IsRegular() {
		return destination.Object{}, fmt.Errorf("stat %s: not a regular file: %w", key, destination.ErrNotFound)
	}
	return destination.Object{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// List walks only the directory the prefix names, not the whole tree, and
// never leaves the root: symlinks are not followed, and only regular files
// are listed.
func (s *Store) List(ctx context.Context, prefix string) ([]destination.Object, error) {
	if err := destination.ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	start := "."
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = prefix[:i]
	}
	var objs []destination.Object
	err := fs.WalkDir(s.root.FS(), start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == start {
				return fs.SkipAll
			}
			if errors.Is(err, syscall.ENOTDIR) && p == start {
				return fs.SkipAll
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			if p == tmpDir {
				return fs.SkipDir
			}
			return nil
		}
		// Not a regular file (symlinks included), or a name Put cannot
		// have written: not an object.
		if !d.Type().IsRegular() || !strings.HasPrefix(p, prefix) || destination.ValidateKey(p) != nil {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) { // deleted while listing
				return nil
			}
			return err
		}
		objs = append(objs, destination.Object{Key: p, Size: fi.Size(), ModTime: fi.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %q in %s: %w", prefix, s.dir, err)
	}
	sort.Slice(objs, func(i, j int) bool { return objs[i].Key < objs[j].Key })
	return objs, nil
}

// Delete removes the file, then any directories it leaves empty.
func (s *Store) Delete(ctx context.Context, key string) error {
	name, err := s.name(key)
	if err != nil {
		return err
	}
	if err := s.root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	for d := path.Dir(name); d != "."; d = path.Dir(d) {
		if s.root.Remove(d) != nil { // not empty, or gone
			break
		}
	}
	return nil
}

// inDir creates dir and runs place, which puts a file into it. Delete removes
// directories it leaves empty, so a concurrent Delete of a sibling can remove
// dir, or a parent, between the two steps or inside MkdirAll (which then sees
// EEXIST for a directory already gone): then both run again. Only place's
// errors can say fs.ErrExist: PutIfAbsent reads that as "the key exists".
func (s *Store) inDir(dir string, place func() error) error {
	for attempt := 0; ; attempt++ {
		err := s.root.MkdirAll(dir, 0o750)
		if err != nil {
			raced := errors.Is(err, fs.ErrExist) || errors.Is(err, fs.ErrNotExist)
			if fi, serr := s.root.Lstat(dir); serr == nil && !fi.IsDir() {
				return fmt.Errorf("%s is not a directory", dir)
			}
			if !raced {
				return err
			}
			if attempt == 20 {
				return fmt.Errorf("directory %s keeps vanishing: %v", dir, err)
			}
			continue
		}
		err = place()
		if err == nil || !errors.Is(err, fs.ErrNotExist) || attempt == 20 {
			return err
		}
	}
}

// sweepTemp removes temporary files whose writer is gone (no lock held).
// Only regular files are opened, without blocking: anything else in .tmp
// (a FIFO, a socket) is not ours and is removed unopened.
func (s *Store) sweepTemp() error {
	entries, err := fs.ReadDir(s.root.FS(), tmpDir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("local destination %s: %w", s.dir, err)
	}
	for _, e := range entries {
		name := tmpDir + "/" + e.Name()
		if !e.Type().IsRegular() {
			if !e.IsDir() {
				s.root.Remove(name)
			}
			continue
		}
		f, err := s.root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			continue
		}
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() &&
			syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			s.root.Remove(name)
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
