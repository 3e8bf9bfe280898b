// Package desttest is the conformance suite every destination.Destination
// implementation must pass. Run it from the implementation's tests against a
// real store:
//
//	desttest.Run(t, func(t *testing.T) destination.Destination { return newStore(t) }, desttest.Options{})
package desttest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/backproof/backproof/destination"
)

// Options tunes the suite to a store.
type Options struct {
	// LargeSize is the size of the object used to exercise multi-part or
	// chunked writes; pick it above the store's part size. Default 3 MiB.
	LargeSize int
}

// Run runs every conformance test. newDest must return an empty destination
// that the test owns.
func Run(t *testing.T, newDest func(t *testing.T) destination.Destination, opts Options) {
	if opts.LargeSize == 0 {
		opts.LargeSize = 3 << 20
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, d destination.Destination, opts Options)
	}{
		{"PutGetRoundTrip", testRoundTrip},
		{"PutReplaces", testReplace},
		{"MissingObject", testMissing},
		{"ListPrefix", testList},
		{"ListEmpty", testListEmpty},
		{"Delete", testDelete},
		{"FailingReaderLeavesNothing", testFailingReader},
		{"FailingReaderKeepsOldObject", testFailingReaderKeepsOld},
		{"CancelledPutLeavesNothing", testCancelledPut},
		{"InvalidKeys", testInvalidKeys},
		{"InvalidPrefixes", testInvalidPrefixes},
		{"ListContainment", testListContainment},
		{"ConcurrentPuts", testConcurrent},
		{"PutIfAbsentCreates", testCreate},
		{"PutIfAbsentKeepsExisting", testCreateExisting},
		{"PutIfAbsentRace", testCreateRace},
		{"PutIfAbsentWithDeletes", testCreateWithDeletes},
		{"PutIfAbsentCancelled", testCreateCancelled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newDest(t), opts)
		})
	}
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func put(t *testing.T, d destination.Destination, key string, data []byte) {
	t.Helper()
	// Hide the length: destinations must not rely on knowing it up front.
	if err := d.Put(context.Background(), key, struct{ io.Reader }{bytes.NewReader(data)}); err != nil {
		t.Fatalf("Put %q: %v", key, err)
	}
}

func get(t *testing.T, d destination.Destination, key string) []byte {
	t.Helper()
	rc, err := d.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get %q: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	return b
}

func assertAbsent(t *testing.T, d destination.Destination, key string) {
	t.Helper()
	ctx := context.Background()
	if _, err := d.Stat(ctx, key); !errors.Is(err, destination.ErrNotFound) {
		t.Errorf("Stat %q after failed Put: got %v, want ErrNotFound", key, err)
	}
	objs, err := d.List(ctx, "")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	for _, o := range objs {
		if o.Key == key {
			t.Errorf("List shows %q after failed Put", key)
		}
	}
}

func testRoundTrip(t *testing.T, d destination.Destination, opts Options) {
	ctx := context.Background()
	for _, size := range []int{0, 1, 4096, opts.LargeSize + 12345} {
		key := fmt.Sprintf("rt/%d/blob", size)
		want := randomBytes(t, size)
		put(t, d, key, want)
		if got := get(t, d, key); !bytes.Equal(got, want) {
			t.Errorf("size %d: Get returned %d bytes that differ from the %d put", size, len(got), len(want))
		}
		obj, err := d.Stat(ctx, key)
		if err != nil {
			t.Fatalf("Stat %q: %v", key, err)
		}
		if obj.Key != key || obj.Size != int64(size) {
			t.Errorf("Stat %q = {%q, %d}, want {%q, %d}", key, obj.Key, obj.Size, key, size)
		}
		if obj.ModTime.IsZero() {
			t.Errorf("Stat %q: zero ModTime", key)
		}
	}
}

func testReplace(t *testing.T, d destination.Destination, _ Options) {
	put(t, d, "a/obj", []byte("first version, longer"))
	put(t, d, "a/obj", []byte("second"))
	if got := get(t, d, "a/obj"); string(got) != "second" {
		t.Errorf("after replace Get = %q, want %q", got, "second")
	}
}

func testMissing(t *testing.T, d destination.Destination, _ Options) {
	ctx := context.Background()
	if _, err := d.Get(ctx, "no/such/key"); !errors.Is(err, destination.ErrNotFound) {
		t.Errorf("Get missing: got %v, want ErrNotFound", err)
	}
	if _, err := d.Stat(ctx, "no/such/key"); !errors.Is(err, destination.ErrNotFound) {
		t.Errorf("Stat missing: got %v, want ErrNotFound", err)
	}
}

func testList(t *testing.T, d destination.Destination, _ Options) {
	keys := []string{"t1/b/manifest.json", "t1/a/dump", "t1/a/manifest.json", "t10/x", "t2/y", "top"}
	for _, k := range keys {
		put(t, d, k, []byte(k))
	}
	cases := map[string][]string{
		"":      {"t1/a/dump", "t1/a/manifest.json", "t1/b/manifest.json", "t10/x", "t2/y", "top"},
		"t1/":   {"t1/a/dump", "t1/a/manifest.json", "t1/b/manifest.json"},
		"t1":    {"t1/a/dump", "t1/a/manifest.json", "t1/b/manifest.json", "t10/x"},
		"t1/a/": {"t1/a/dump", "t1/a/manifest.json"},
		"zz/":   nil,
	}
	for prefix, want := range cases {
		assertList(t, d, prefix, want)
	}
}

func testListEmpty(t *testing.T, d destination.Destination, _ Options) {
	objs, err := d.List(context.Background(), "")
	if err != nil || len(objs) != 0 {
		t.Errorf("List on empty destination = %v, %v; want nothing, nil", objs, err)
	}
}

func testDelete(t *testing.T, d destination.Destination, _ Options) {
	ctx := context.Background()
	put(t, d, "d/one", []byte("1"))
	put(t, d, "d/two", []byte("2"))
	if err := d.Delete(ctx, "d/one"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := d.Stat(ctx, "d/one"); !errors.Is(err, destination.ErrNotFound) {
		t.Errorf("Stat after Delete: %v, want ErrNotFound", err)
	}
	if got := get(t, d, "d/two"); string(got) != "2" {
		t.Errorf("sibling changed by Delete: %q", got)
	}
	if err := d.Delete(ctx, "d/one"); err != nil {
		t.Errorf("Delete of a missing object: %v, want nil", err)
	}
}

// failingReader yields n random bytes, then err.
type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

var errBroken = errors.New("source broke mid-stream")

func testFailingReader(t *testing.T, d destination.Destination, opts Options) {
	for _, size := range []int{10, opts.LargeSize + 1} {
		key := fmt.Sprintf("fail/%d", size)
		r := &failingReader{r: bytes.NewReader(randomBytes(t, size)), err: errBroken}
		err := d.Put(context.Background(), key, r)
		if !errors.Is(err, errBroken) {
			t.Errorf("Put with a reader failing after %d bytes: got %v, want an error wrapping the reader's", size, err)
		}
		assertAbsent(t, d, key)
	}
}

func testFailingReaderKeepsOld(t *testing.T, d destination.Destination, _ Options) {
	put(t, d, "keep/obj", []byte("good"))
	r := &failingReader{r: bytes.NewReader([]byte("partial")), err: errBroken}
	if err := d.Put(context.Background(), "keep/obj", r); err == nil {
		t.Fatal("Put with failing reader succeeded")
	}
	if got := get(t, d, "keep/obj"); string(got) != "good" {
		t.Errorf("failed Put changed the existing object to %q", got)
	}
}

// blockingReader yields its data, then blocks until ctx is done.
type blockingReader struct {
	ctx  context.Context
	data []byte
}

func (b *blockingReader) Read(p []byte) (int, error) {
	if len(b.data) > 0 {
		n := copy(p, b.data)
		b.data = b.data[n:]
		return n, nil
	}
	<-b.ctx.Done()
	return 0, b.ctx.Err()
}

func testCancelledPut(t *testing.T, d destination.Destination, opts Options) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- d.Put(ctx, "cancel/obj", &blockingReader{ctx: ctx, data: randomBytes(t, opts.LargeSize+1)})
	}()
	cancel()
	if err := <-done; err == nil {
		t.Fatal("Put succeeded after its context was cancelled")
	}
	assertAbsent(t, d, "cancel/obj")
}

func testInvalidKeys(t *testing.T, d destination.Destination, _ Options) {
	ctx := context.Background()
	for _, key := range []string{"", "/abs", "../escape", "a/../../b", "a//b", "a/./b", "trailing/", "back\\slash",
		"..", ".", "nul\x00byte", "new\nline", "esc\x1b[31m", "del\x7f"} {
		if err := d.Put(ctx, key, bytes.NewReader([]byte("x"))); err == nil {
			t.Errorf("Put accepted invalid key %q", key)
		}
		if _, err := d.Get(ctx, key); err == nil {
			t.Errorf("Get accepted invalid key %q", key)
		}
		if _, err := d.Stat(ctx, key); err == nil || errors.Is(err, destination.ErrNotFound) {
			t.Errorf("Stat accepted invalid key %q: %v", key, err)
		}
		if err := d.PutIfAbsent(ctx, key, []byte("x")); err == nil {
			t.Errorf("PutIfAbsent accepted invalid key %q", key)
		}
		if err := d.Delete(ctx, key); err == nil {
			t.Errorf("Delete accepted invalid key %q", key)
		}
	}
}

// testInvalidPrefixes: a listing names nothing outside the destination.
func testInvalidPrefixes(t *testing.T, d destination.Destination, _ Options) {
	put(t, d, "t/a", []byte("x"))
	for _, prefix := range []string{"/abs", "../", "../x/", "t/../../", "t/./", "t//", "..", "t/..", "ctl\x01/", "back\\slash/"} {
		if objs, err := d.List(context.Background(), prefix); err == nil {
			t.Errorf("List accepted invalid prefix %q: %v", prefix, objs)
		}
	}
}

// testListContainment: a prefix selects by whole key prefix, and a
// sibling whose name extends the prefix's directory is not inside it.
func testListContainment(t *testing.T, d destination.Destination, _ Options) {
	for _, k := range []string{"t/a/1", "t/ab/2", "tx/a/3", "t-a/4"} {
		put(t, d, k, []byte(k))
	}
	for prefix, want := range map[string][]string{"t/a/": {"t/a/1"}, "t/a": {"t/a/1", "t/ab/2"}, "t/": {"t/a/1", "t/ab/2"},
		"t": {"t-a/4", "t/a/1", "t/ab/2", "tx/a/3"}} {
		assertList(t, d, prefix, want)
	}
}

// assertList checks the keys List returns for prefix, and their sizes
// (every test object holds its own key).
func assertList(t *testing.T, d destination.Destination, prefix string, want []string) {
	t.Helper()
	objs, err := d.List(context.Background(), prefix)
	if err != nil {
		t.Fatalf("List %q: %v", prefix, err)
	}
	var got []string
	for _, o := range objs {
		got = append(got, o.Key)
		if o.Size != int64(len(o.Key)) {
			t.Errorf("List %q: %s has size %d, want %d", prefix, o.Key, o.Size, len(o.Key))
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("List %q = %v, want %v", prefix, got, want)
	}
}

// Counting is a destination that counts the reads made through it: tests
// of how much a command reads.
type Counting struct {
	destination.Destination
	Gets, Lists atomic.Int32
}

func (c *Counting) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	c.Gets.Add(1)
	return c.Destination.Get(ctx, key)
}

func (c *Counting) List(ctx context.Context, prefix string) ([]destination.Object, error) {
	c.Lists.Add(1)
	return c.Destination.List(ctx, prefix)
}

// Take returns the counts and zeroes them.
func (c *Counting) Take() (gets, lists int32) { return c.Gets.Swap(0), c.Lists.Swap(0) }

func testConcurrent(t *testing.T, d destination.Destination, _ Options) {
	var wg sync.WaitGroup
	data := make([][]byte, 8)
	for i := range data {
		data[i] = randomBytes(t, 64<<10+i)
	}
	errs := make(chan error, len(data))
	for i := range data {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- d.Put(context.Background(), fmt.Sprintf("conc/%d", i), bytes.NewReader(data[i]))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent Put: %v", err)
		}
	}
	for i := range data {
		if got := get(t, d, fmt.Sprintf("conc/%d", i)); !bytes.Equal(got, data[i]) {
			t.Errorf("conc/%d differs after concurrent puts", i)
		}
	}
}

func testCreate(t *testing.T, d destination.Destination, _ Options) {
	ctx := context.Background()
	if err := d.PutIfAbsent(ctx, "c/t/lease/1.json", []byte("mine")); err != nil {
		t.Fatalf("PutIfAbsent on a free key: %v", err)
	}
	if got := get(t, d, "c/t/lease/1.json"); string(got) != "mine" {
		t.Errorf("Get after PutIfAbsent = %q", got)
	}
	objs, err := d.List(ctx, "c/")
	if err != nil || len(objs) != 1 || objs[0].Key != "c/t/lease/1.json" || objs[0].Size != 4 {
		t.Errorf("List after PutIfAbsent = %v, %v", objs, err)
	}
	// Free again once deleted.
	if err := d.Delete(ctx, "c/t/lease/1.json"); err != nil {
		t.Fatal(err)
	}
	if err := d.PutIfAbsent(ctx, "c/t/lease/1.json", []byte("again")); err != nil {
		t.Fatalf("PutIfAbsent after Delete: %v", err)
	}
	for _, key := range []string{"", "/abs", "../escape", "a//b"} {
		if err := d.PutIfAbsent(ctx, key, []byte("x")); err == nil || errors.Is(err, destination.ErrExists) {
			t.Errorf("PutIfAbsent accepted invalid key %q: %v", key, err)
		}
	}
}

func testCreateExisting(t *testing.T, d destination.Destination, _ Options) {
	put(t, d, "c/obj", []byte("first"))
	err := d.PutIfAbsent(context.Background(), "c/obj", []byte("second"))
	if !errors.Is(err, destination.ErrExists) {
		t.Fatalf("PutIfAbsent over an existing object: %v, want ErrExists", err)
	}
	if got := get(t, d, "c/obj"); string(got) != "first" {
		t.Errorf("existing object changed to %q", got)
	}
	if err := d.PutIfAbsent(context.Background(), "c/obj", []byte("second")); !errors.Is(err, destination.ErrExists) {
		t.Fatalf("second PutIfAbsent over an existing object: %v, want ErrExists", err)
	}
}

// Of many writers racing for one key, exactly one wins, and its data is
// what is stored.
func testCreateRace(t *testing.T, d destination.Destination, _ Options) {
	const n = 12
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = d.PutIfAbsent(context.Background(), "race/lease", []byte(fmt.Sprintf("writer %d", i)))
		}()
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("writers %d and %d both created the key", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, destination.ErrExists):
			t.Errorf("writer %d: %v, want ErrExists", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer created the key")
	}
	if got, want := string(get(t, d, "race/lease")), fmt.Sprintf("writer %d", winner); got != want {
		t.Errorf("stored %q, but %q won", got, want)
	}
}

// Creating and deleting sibling keys at once, as lease holders do (the
// newest lease stays while older ones go), never fails. (With nothing left
// in the folder, MinIO's single-drive backend can answer a conditional PUT
// with 403 while a Delete removes the folder; leases never empty theirs.
// local_test covers emptied folders on the local store.)
func testCreateWithDeletes(t *testing.T, d destination.Destination, _ Options) {
	ctx := context.Background()
	put(t, d, "cd/t/lease/newest", []byte("stays"))
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("cd/t/lease/%d", w)
			for range 25 {
				if err := d.PutIfAbsent(ctx, key, []byte("x")); err != nil {
					errs <- fmt.Errorf("PutIfAbsent %s: %w", key, err)
					return
				}
				if err := d.Delete(ctx, key); err != nil {
					errs <- fmt.Errorf("Delete %s: %w", key, err)
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

func testCreateCancelled(t *testing.T, d destination.Destination, _ Options) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d.PutIfAbsent(ctx, "cc/lease", []byte("x")); err == nil || errors.Is(err, destination.ErrExists) {
		t.Fatalf("PutIfAbsent with a cancelled context: %v, want the context's error", err)
	}
	assertAbsent(t, d, "cc/lease")
}
