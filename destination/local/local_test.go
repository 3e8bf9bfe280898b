package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/backproof/backproof/destination"
	"github.com/backproof/backproof/destination/desttest"
)

func TestConformance(t *testing.T) {
	desttest.Run(t, func(t *testing.T) destination.Destination {
		s, err := New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, desttest.Options{})
}

func TestNewRequiresExistingDir(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "not-mounted")
	_, err := New(missing)
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("New(missing) = %v, want a does-not-exist error", err)
	}
	if _, statErr := os.Stat(missing); statErr == nil {
		t.Fatal("New created the missing root")
	}
}

// A temporary file whose writer died is swept; one still locked is kept.
func TestSweepsDeadWritersOnly(t *testing.T) {
	root := t.TempDir()
	tmp := filepath.Join(root, tmpDir)
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	dead := filepath.Join(tmp, "put-dead")
	if err := os.WriteFile(dead, []byte("partial dump"), 0o600); err != nil {
		t.Fatal(err)
	}
	live, err := os.Create(filepath.Join(tmp, "put-live"))
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	// flock locks are per open file description, so a second open in this
	// process contends like another process would.
	if err := syscall.Flock(int(live.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	s, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("dead writer's temp file survived: %v", err)
	}
	if _, err := os.Stat(live.Name()); err != nil {
		t.Errorf("live writer's temp file was removed: %v", err)
	}
	objs, err := s.List(context.Background(), "")
	if err != nil || len(objs) != 0 {
		t.Errorf("List shows temp files: %v %v", objs, err)
	}
}

func TestDeleteRemovesEmptyDirs(t *testing.T) {
	root := t.TempDir()
	s, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Put(ctx, "orders/id1/manifest.json", strings.NewReader("{}")); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "orders/id1/manifest.json"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "orders")); !os.IsNotExist(err) {
		t.Errorf("empty directories left behind: %v", err)
	}
}

// Put and PutIfAbsent into a folder that concurrent Deletes of siblings keep
// emptying, and so removing, never fail.
func TestWritesRaceFolderRemoval(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("t/lease/%d", w)
			for i := range 50 {
				var err error
				if i%2 == 0 {
					err = s.PutIfAbsent(ctx, key, []byte("x"))
				} else {
					err = s.Put(ctx, key, strings.NewReader("x"))
				}
				if err == nil {
					err = s.Delete(ctx, key)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// escapeFixture makes a root with a sibling holding a secret, and links in
// the root pointing out of it: shop -> the sibling, link -> the secret.
func escapeFixture(t *testing.T) (root, outside string) {
	t.Helper()
	base := t.TempDir()
	root, outside = filepath.Join(base, "bp"), filepath.Join(base, "bp-other")
	for _, d := range []string{root, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "shop")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "orders"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "orders", "link")); err != nil {
		t.Fatal(err)
	}
	return root, outside
}

// Nothing reaches outside the root: not a symlinked target folder, not a
// symlinked file, not a prefix naming a sibling whose name extends the
// root's.
func TestNoEscapeFromRoot(t *testing.T) {
	root, outside := escapeFixture(t)
	s, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Put(ctx, "shop/20261122T020000Z-aaaaaaaa/dump", strings.NewReader("dump")); err == nil {
		t.Error("Put through a symlink out of the root succeeded")
	}
	if _, err := os.Stat(filepath.Join(outside, "20261122T020000Z-aaaaaaaa")); err == nil {
		t.Error("Put wrote outside the root")
	}
	for _, key := range []string{"shop/secret", "orders/link"} {
		if rc, err := s.Get(ctx, key); err == nil {
			rc.Close()
			t.Errorf("Get %s read a file outside the root", key)
		}
		if _, err := s.Stat(ctx, key); err == nil {
			t.Errorf("Stat %s reached a file outside the root", key)
		}
	}
	for _, prefix := range []string{"shop/", "orders/", "", "../bp-other/"} {
		objs, _ := s.List(ctx, prefix)
		for _, o := range objs {
			t.Errorf("List %q shows %s, outside the root or a symlink", prefix, o.Key)
		}
	}
	if err := s.Delete(ctx, "shop/secret"); err == nil {
		if _, err := os.Stat(filepath.Join(outside, "secret")); err != nil {
			t.Error("Delete removed a file outside the root")
		}
	}
}

// A FIFO in .tmp or under a key hangs nothing: opening the store sweeps
// around it and reading it is refused, where opening a FIFO for reading
// would block until a writer came.
func TestFIFOHangsNothing(t *testing.T) {
	root := t.TempDir()
	for _, p := range []string{".tmp/put-fifo", "orders/20261122T020000Z-aaaaaaaa/manifest.json"} {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mkfifo(filepath.Join(root, p), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() {
		s, err := New(root)
		if err == nil {
			var rc interface{ Close() error }
			if rc, err = s.Get(context.Background(), "orders/20261122T020000Z-aaaaaaaa/manifest.json"); err == nil {
				rc.Close()
				err = fmt.Errorf("Get opened a FIFO")
			} else if !errors.Is(err, destination.ErrNotFound) {
				err = fmt.Errorf("Get of a FIFO: %w, want ErrNotFound", err)
			} else {
				err = nil
			}
		}
		done <- err
	}()
	// Nothing here waits on anything: a minute without an answer is a hang.
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("opening the store or reading a FIFO hung")
	}
}

// A file where a key's directory should be is named at once, not retried
// as a race with a concurrent Delete.
func TestFileInPlaceOfDirectory(t *testing.T) {
	dir := t.TempDir()
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "t"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = s.PutIfAbsent(context.Background(), "t/lease", []byte("x"))
	if err == nil || !strings.Contains(err.Error(), "t is not a directory") || errors.Is(err, destination.ErrExists) {
		t.Errorf("PutIfAbsent under a file: %v", err)
	}
}
