package local

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

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
