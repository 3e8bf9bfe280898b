package backup_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backproof/backproof/backup"
	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/destination"
	"github.com/backproof/backproof/destination/s3"
	"github.com/backproof/backproof/internal/testenv"
)

// silentServer accepts connections and never reads or answers: a store
// behind a broken load balancer.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// stopsReading reads n bytes of the stream, then takes nothing more until
// its context ends: a destination whose disk or network hung.
type stopsReading struct {
	destination.Destination
	n int64
}

func (s stopsReading) Put(ctx context.Context, key string, r io.Reader) error {
	if _, err := io.CopyN(io.Discard, r, s.n); err != nil {
		return err
	}
	<-ctx.Done()
	return context.Cause(ctx)
}

// runWithin runs the backup and fails the test if it never returns.
func runWithin(t *testing.T, target backup.Target) (*backup.Result, error) {
	t.Helper()
	type out struct {
		res *backup.Result
		err error
	}
	c := make(chan out, 1)
	go func() {
		res, err := (&backup.Runner{}).Run(context.Background(), target)
		c <- out{res, err}
	}()
	// A backstop, not a measurement: without stall_timeout these hang forever.
	select {
	case o := <-c:
		return o.res, o.err
	case <-time.After(3 * time.Minute):
		t.Fatal("backup hung on a stalled destination")
		return nil, nil
	}
}

// A destination that takes no bytes for stall_timeout is failed and dropped
// from the fan-out; the other destination commits.
func TestStalledDestinationIsDropped(t *testing.T) {
	dsn := seededDB(t, 20000)
	env := testenv.S3(t)
	silent, err := s3.New(context.Background(), s3.Config{Bucket: "backups", Region: env.Region,
		Endpoint: "http://" + silentServer(t), PathStyle: true, AccessKeyID: env.AccessKey, SecretAccessKey: env.SecretKey,
		PartSize: 5 << 20, StallTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]backup.Destination{
		// The S3 requests get no answer: the connection's stall timeout.
		"s3 never answers": {Name: "offsite", Destination: silent, StallTimeout: time.Second},
		// The destination stops reading: the fan-out's stall timeout.
		"stops reading": {Name: "offsite", Destination: stopsReading{newLocal(t).Destination, 64 << 10}, StallTimeout: time.Second},
	}
	for name, stalled := range cases {
		t.Run(name, func(t *testing.T) {
			l := newLocal(t)
			l.StallTimeout = time.Second
			res, err := runWithin(t, pgTarget(t, dsn, l, stalled))
			t.Logf("error: %v", err)
			if err == nil || !strings.Contains(err.Error(), "offsite") {
				t.Fatalf("Run error = %v, want the stalled destination named", err)
			}
			if !strings.Contains(err.Error(), "stall_timeout") {
				t.Errorf("error does not say the destination stalled: %v", err)
			}
			if name == "stops reading" && !errors.Is(err, backup.ErrStalled) {
				t.Errorf("error is not ErrStalled: %v", err)
			}
			if !res.Destinations[0].Committed || res.Destinations[1].Committed {
				t.Fatalf("per-destination results: %+v", res.Destinations)
			}
			listing, err := catalog.List(context.Background(), l, "orders")
			if err != nil || len(listing.Backups) != 1 {
				t.Fatalf("local copy not committed: %+v %v", listing, err)
			}
		})
	}
}
