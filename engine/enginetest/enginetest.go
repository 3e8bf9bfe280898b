// Package enginetest is the conformance suite every engine must pass, run
// from the engine's own tests against a real server:
//
//	func TestConformance(t *testing.T) {
//		enginetest.Run(t, enginetest.Harness{Kind: postgres.Kind, NewDatabase: ..., ...})
//	}
//
// It checks the contract of package engine end to end: a dump's statistics
// equal the source; a restore into an empty target reproduces the source's
// content; a non-empty target is refused and untouched; --force replaces what
// the backup holds and leaves the rest; a damaged artifact is a bad backup,
// never an operational error; a cancelled dump returns the context's error
// and leaves nothing; a writing check query is refused; a server that is down
// and a wrong password are operational errors that name the server; and the
// password appears in no error, log line or child's argv.
package enginetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backproof/backproof/engine"
	"github.com/backproof/backproof/internal/testenv"
)

// Content is what a database holds, for comparing two: container (named as
// the engine names it in TableStats: "schema.name", or the name alone when
// the schema is empty) -> item key -> the item's value, each rendered
// deterministically as text.
type Content map[string]map[string]string

// Harness is what the suite needs from an engine's tests. Every database
// it returns must be on a real server reached at 127.0.0.1 and must need a
// password, given in the DSN, which must be a URL
// (scheme://user:password@host:port/...).
type Harness struct {
	Kind engine.Kind
	// NewDatabase returns the DSN of a fresh, empty database the test owns.
	// Two calls give databases of the same name on different servers, or of
	// different names whose containers are named alike (PostgreSQL: schema
	// "public" in two databases), so a restored copy names its containers
	// exactly as the source.
	NewDatabase func(t testing.TB) string
	// Seed fills the database at dsn with a data set spread over at least
	// two containers, with schema objects the dump records (indexes...).
	// Variant 1 is the source; variant 2 has other items in the same
	// containers (some keys alike with other values). Variant 1 must dump to
	// well over 100 KiB: a tool the engine runs then still runs, blocked on
	// its full pipe, when the first bytes arrive, and the argv check looks.
	Seed func(t testing.TB, dsn string, variant int)
	// Extra adds a container that no variant has and returns its name.
	Extra func(t testing.TB, dsn string) string
	// Content reads everything the database at dsn holds.
	Content func(t testing.TB, dsn string) Content
	// WritingQuery is a check query that would change the copy if run.
	WritingQuery string
	// NoSchema: the engine records no schema objects (Redis).
	NoSchema bool
}

// Run runs every conformance test.
func Run(t *testing.T, h Harness) {
	s := &suite{h: h}
	t.Run("DumpStatsEqualSource", s.dumpStats)
	t.Run("RestoreIntoEmpty", s.restoreEmpty)
	t.Run("NonEmptyTargetRefused", s.nonEmptyRefused)
	t.Run("ForceReplaces", s.force)
	t.Run("StreamRestore", s.streamRestore)
	t.Run("DamagedArtifactIsBad", s.damaged)
	t.Run("CancelledDump", s.cancelledDump)
	t.Run("ServerDown", s.serverDown)
	t.Run("WrongPassword", s.wrongPassword)
}

type suite struct {
	h Harness
}

// env is one test's engine, with what it logs and the secrets to look for.
type env struct {
	t       *testing.T
	h       Harness
	src     string // source DSN
	eng     engine.Engine
	log     *testenv.Buffer
	secrets []string
	errs    []error
}

// newEnv seeds a source (variant 1) and opens the engine on it.
func (s *suite) newEnv(t *testing.T) *env {
	t.Helper()
	src := s.h.NewDatabase(t)
	s.h.Seed(t, src, 1)
	e := &env{t: t, h: s.h, src: src, log: &testenv.Buffer{}}
	if s.h.Kind.Secrets == nil {
		t.Fatal("Kind.Secrets is nil")
	}
	e.secrets = s.h.Kind.Secrets(src)
	if len(e.secrets) == 0 {
		t.Fatalf("Kind.Secrets found no password in the source DSN; the suite needs a server that asks for one")
	}
	e.eng = e.open(src)
	t.Cleanup(e.checkSecrets)
	return e
}

// open returns the engine for dsn, logging at debug level into e.log.
func (e *env) open(dsn string) engine.Engine {
	e.t.Helper()
	log := slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	eng, err := e.h.Kind.New(dsn, log)
	if err != nil {
		e.t.Fatalf("%s: New: %v", e.h.Kind.Name, e.noted(err))
	}
	return eng
}

// noted keeps err for the final secrets check and returns it.
func (e *env) noted(err error) error {
	if err != nil {
		e.errs = append(e.errs, err)
	}
	return err
}

// checkSecrets: no error the test saw and no log line holds a secret.
func (e *env) checkSecrets() {
	for _, err := range e.errs {
		for _, s := range e.secrets {
			if strings.Contains(err.Error(), s) {
				e.t.Errorf("an error holds the password: %s", hide(err.Error(), e.secrets))
			}
		}
	}
	log := e.log.String()
	for _, s := range e.secrets {
		if strings.Contains(log, s) {
			e.t.Errorf("the log holds the password:\n%s", hide(log, e.secrets))
		}
	}
}

// argvWatch scans every process's argv for the secrets each time the
// engine moves bytes (a dump writes, a restore reads), so a child the
// engine runs is seen while it runs.
type argvWatch struct {
	e      *env
	w      io.Writer
	mu     sync.Mutex
	scans  int
	leaked string
}

func (a *argvWatch) Write(p []byte) (int, error) {
	a.mu.Lock()
	if a.scans < 8 && a.leaked == "" {
		a.scans++
		a.leaked = argvHolding(a.e.secrets)
	}
	a.mu.Unlock()
	return a.w.Write(p)
}

func (a *argvWatch) check() {
	a.e.t.Helper()
	if a.leaked != "" {
		a.e.t.Errorf("a process's argv holds the password: %q", a.leaked)
	}
}

// argvHolding returns the argv of a process holding one of secrets.
func argvHolding(secrets []string) string {
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range dirs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				return hide(strings.ReplaceAll(string(b), "\x00", " "), secrets)
			}
		}
	}
	return ""
}

// hide masks secrets in what a failing test prints.
func hide(s string, secrets []string) string {
	for _, x := range secrets {
		s = strings.ReplaceAll(s, x, "<PASSWORD>")
	}
	return s
}

// dump dumps the source into a file and returns its path and DumpInfo.
func (e *env) dump(ctx context.Context) (string, *engine.DumpInfo) {
	e.t.Helper()
	path := filepath.Join(e.t.TempDir(), e.eng.Artifact())
	f, err := os.Create(path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	w := &argvWatch{e: e, w: f}
	info, err := e.eng.Dump(ctx, w)
	if err != nil {
		e.t.Fatalf("dump %s: %v", e.eng.Describe(e.src), e.noted(err))
	}
	w.check()
	if info == nil {
		e.t.Fatal("dump returned no DumpInfo")
	}
	if err := f.Close(); err != nil {
		e.t.Fatal(err)
	}
	return path, info
}

// restoreInto restores path into dsn with restore --to's guard.
func (e *env) restoreInto(ctx context.Context, dsn, path string, info *engine.DumpInfo, force bool) error {
	if err := engine.CheckEmpty(ctx, e.eng, dsn, force); err != nil {
		return e.noted(err)
	}
	w := &argvWatch{e: e, w: io.Discard}
	err := e.eng.RestoreInto(ctx, dsn, path, info, engine.RestoreOptions{Jobs: 1, Clean: force, Progress: w})
	w.check()
	return e.noted(err)
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// name is how Content names the container of ts.
func name(ts engine.TableStats) string {
	if ts.Schema == "" {
		return ts.Name
	}
	return ts.Schema + "." + ts.Name
}

func counts(tables []engine.TableStats) map[string]int64 {
	m := make(map[string]int64, len(tables))
	for _, ts := range tables {
		m[name(ts)] = ts.Rows
	}
	return m
}

func contentCounts(c Content) map[string]int64 {
	m := make(map[string]int64, len(c))
	for k, items := range c {
		m[k] = int64(len(items))
	}
	return m
}

// isBad reports whether err blames the backup (exit 3).
func isBad(err error) bool {
	return errors.Is(err, engine.ErrRestore) || errors.Is(err, engine.ErrCorrupt) || errors.Is(err, engine.ErrQuery)
}

// The manifest's statistics are the source's exact counts.
func (s *suite) dumpStats(t *testing.T) {
	e := s.newEnv(t)
	ctx := ctxFor(t)
	want := s.h.Content(t, e.src)
	if len(want) < 2 {
		t.Fatalf("Seed made %d containers, want at least 2", len(want))
	}
	_, info := e.dump(ctx)
	if got, w := counts(info.Source.Tables), contentCounts(want); !maps.Equal(got, w) {
		t.Errorf("dump statistics differ from the source:\ndump   %v\nsource %v", got, w)
	}
	if info.ServerVersion == "" {
		t.Error("DumpInfo.ServerVersion is empty")
	}
	if len(info.Source.Objects) == 0 && !s.h.NoSchema {
		t.Error("DumpInfo.Source.Objects is empty: Seed makes schema objects")
	}
	contentEqual(t, "source after the dump", s.h.Content(t, e.src), want)
}

// A restore into an empty target reproduces the source; the copy observes
// the dump's statistics, passes the integrity check and refuses a write.
func (s *suite) restoreEmpty(t *testing.T) {
	e := s.newEnv(t)
	ctx := ctxFor(t)
	path, info := e.dump(ctx)
	target := s.h.NewDatabase(t)
	if n, err := e.eng.Objects(ctx, target); err != nil || n != 0 {
		t.Fatalf("Objects of an empty target = %d, %v; want 0", n, e.noted(err))
	}
	if err := e.restoreInto(ctx, target, path, info, false); err != nil {
		t.Fatalf("restore into %s: %v", e.eng.Describe(target), err)
	}
	want, got := s.h.Content(t, e.src), s.h.Content(t, target)
	if !contentEqual(t, "restored copy", got, want) {
		return
	}
	if n, err := e.eng.Objects(ctx, target); err != nil || n == 0 {
		t.Errorf("Objects after the restore = %d, %v; want > 0", n, e.noted(err))
	}

	cp, err := e.eng.Open(ctx, serverOf(t, target))
	if err != nil {
		t.Fatalf("open the copy: %v", e.noted(err))
	}
	defer cp.Close(ctx)
	// At the same time, as verification runs them.
	type integrity struct {
		checked string
		err     error
	}
	integ := make(chan integrity, 1)
	go func() {
		checked, err := cp.Integrity(ctx)
		integ <- integrity{checked, err}
	}()
	obs, err := cp.Observe(ctx)
	in := <-integ
	if err != nil {
		t.Fatalf("observe: %v", e.noted(err))
	}
	if !maps.Equal(counts(obs.Tables), counts(info.Source.Tables)) {
		t.Errorf("observed %v, the dump recorded %v", counts(obs.Tables), counts(info.Source.Tables))
	}
	for kind, names := range info.Source.Objects {
		for _, n := range names {
			if !slices.Contains(obs.Objects[kind], n) {
				t.Errorf("%s %s of the dump is missing from the copy", kind, n)
			}
		}
	}
	if checked, err := in.checked, in.err; err != nil && !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("integrity check of a good copy: %v", e.noted(err))
	} else if err == nil && checked == "" {
		t.Error("Integrity passed and says nothing about what it checked")
	}

	// A writing check query is refused, at config load or by the copy.
	if q := s.h.Kind.CheckQuery; q != nil {
		if err := q(s.h.WritingQuery); err == nil {
			t.Errorf("Kind.CheckQuery accepted the writing query %q", s.h.WritingQuery)
		}
	}
	_, err = cp.Query(ctx, s.h.WritingQuery)
	if !errors.Is(err, engine.ErrQuery) {
		t.Errorf("writing query %q: got %v, want ErrQuery", s.h.WritingQuery, e.noted(err))
	}
	e.noted(err)
	contentEqual(t, "copy after the writing query", s.h.Content(t, target), want)
}

// An engine that restores from a stream checks the target before it asks
// for the stream, returns the stream's error as it is with the target
// untouched, and restores the stream it gets as RestoreInto restores the
// file.
func (s *suite) streamRestore(t *testing.T) {
	e := s.newEnv(t)
	sr, ok := e.eng.(engine.StreamRestorer)
	if !ok {
		t.Skipf("%s restores from files only", e.eng.Describe(e.src))
	}
	ctx := ctxFor(t)
	path, info := e.dump(ctx)
	target := s.h.NewDatabase(t)
	opened := 0
	refused := errors.New("the spool failed its checksum")
	err := sr.RestoreStream(ctx, target, func() (io.Reader, error) { opened++; return nil, refused }, info, engine.RestoreOptions{})
	if !errors.Is(err, refused) || opened != 1 {
		t.Fatalf("open failed: got %v after %d calls of open, want its error after one", e.noted(err), opened)
	}
	if n, err := e.eng.Objects(ctx, target); err != nil || n != 0 {
		t.Fatalf("Objects after open failed = %d, %v; want 0", n, e.noted(err))
	}

	host := parseURL(t, target).Host
	down := strings.Replace(target, host, "127.0.0.1:1", 1)
	opened = 0
	err = sr.RestoreStream(ctx, down, func() (io.Reader, error) { opened++; return nil, refused }, info, engine.RestoreOptions{})
	if err == nil || errors.Is(err, refused) || opened != 0 {
		t.Fatalf("an unreachable target: got %v after %d calls of open, want its error before any", e.noted(err), opened)
	}

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := &argvWatch{e: e, w: io.Discard}
	err = sr.RestoreStream(ctx, target, func() (io.Reader, error) { return f, nil }, info, engine.RestoreOptions{Progress: w})
	w.check()
	if err != nil {
		t.Fatalf("restore a stream into %s: %v", e.eng.Describe(target), e.noted(err))
	}
	contentEqual(t, "restored from a stream", s.h.Content(t, target), s.h.Content(t, e.src))
}

// A target that holds anything is refused unless --force, and untouched.
func (s *suite) nonEmptyRefused(t *testing.T) {
	e := s.newEnv(t)
	ctx := ctxFor(t)
	path, info := e.dump(ctx)
	target := s.h.NewDatabase(t)
	s.h.Extra(t, target)
	before := s.h.Content(t, target)
	err := e.restoreInto(ctx, target, path, info, false)
	if !errors.Is(err, engine.ErrNotEmpty) {
		t.Fatalf("restore into a non-empty target: got %v, want ErrNotEmpty", err)
	}
	contentEqual(t, "refused target", s.h.Content(t, target), before)
}

// --force replaces every container the backup holds and leaves the others.
func (s *suite) force(t *testing.T) {
	e := s.newEnv(t)
	ctx := ctxFor(t)
	path, info := e.dump(ctx)
	target := s.h.NewDatabase(t)
	s.h.Seed(t, target, 2)
	extra := s.h.Extra(t, target)
	extraItems := s.h.Content(t, target)[extra]
	if len(extraItems) == 0 {
		t.Fatalf("Extra made container %q, which Content does not list or is empty", extra)
	}
	if err := e.restoreInto(ctx, target, path, info, true); err != nil {
		t.Fatalf("restore --force: %v", err)
	}
	src, got := s.h.Content(t, e.src), s.h.Content(t, target)
	for c, items := range src {
		for k, v := range items {
			if g, ok := got[c][k]; !ok || g != v {
				t.Errorf("after --force, %s %s = %q (present %v), the source has %q", c, k, g, ok, v)
			}
		}
	}
	if !maps.Equal(got[extra], extraItems) {
		t.Errorf("--force changed container %s, which the backup does not hold", extra)
	}
}

// A damaged artifact is a bad backup (ErrRestore or ErrCorrupt), never an
// operational error; a flipped byte the format cannot notice may restore,
// and then the stored SHA-256 is what catches it.
func (s *suite) damaged(t *testing.T) {
	e := s.newEnv(t)
	ctx := ctxFor(t)
	path, info := e.dump(ctx)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		b := slices.Clone(good)
		b[i] ^= 0xff
		return b
	}
	cases := []struct {
		name    string
		data    []byte
		mayLoad bool // the format may not notice
	}{
		{"flipped first byte", flip(0), false},
		{"truncated to half", good[:len(good)/2], false},
		{"last byte cut", good[:len(good)-1], false},
		{"empty", nil, false},
		{"flipped middle byte", flip(len(good) / 2), true},
	}
	// One target while failed restores leave it empty (a fresh one when
	// they do not: the contract only asks the error to say what is left).
	parent := t
	target := s.h.NewDatabase(parent)
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			bad := filepath.Join(t.TempDir(), e.eng.Artifact())
			if err := os.WriteFile(bad, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			if n, err := e.eng.Objects(ctx, target); err != nil || n > 0 {
				target = s.h.NewDatabase(parent)
			}
			err := e.restoreInto(ctx, target, bad, info, false)
			switch {
			case err == nil && tc.mayLoad:
			case err == nil:
				t.Errorf("restore --to of a damaged artifact succeeded")
			case !isBad(err):
				t.Errorf("restore --to of a damaged artifact is an operational error, want ErrRestore or ErrCorrupt: %v", err)
			}
			if pre, ok := e.eng.(engine.Preloader); ok {
				spec, srv := pre.Sandbox("image", "password", info)
				err := e.noted(pre.Preload(ctx, &spec, srv, bad, info))
				switch {
				case err == nil && tc.mayLoad:
				case err == nil:
					t.Errorf("Preload of a damaged artifact succeeded")
				case !isBad(err):
					t.Errorf("Preload of a damaged artifact is an operational error: %v", err)
				}
			}
		})
	}
}

// A cancelled dump returns the context's error and leaves nothing: no file
// in the temporary directory, the source as it was.
func (s *suite) cancelledDump(t *testing.T) {
	e := s.newEnv(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	before := s.h.Content(t, e.src)
	ctx, cancel := context.WithCancelCause(ctxFor(t))
	defer cancel(nil)
	stop := errors.New("dump stopped by the test")
	w := &cancelWriter{cancel: func() { cancel(stop) }}
	info, err := e.eng.Dump(ctx, w)
	e.noted(err)
	if !w.wrote {
		t.Fatal("the dump wrote nothing before it returned")
	}
	if err == nil || !errors.Is(err, stop) && !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled dump: got %v, %v; want the context's error", info, err)
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("a cancelled dump left %d files in TMPDIR (%s...)", len(left), left[0].Name())
	}
	contentEqual(t, "source after a cancelled dump", s.h.Content(t, e.src), before)
}

// cancelWriter cancels the dump at its first bytes and takes the rest.
type cancelWriter struct {
	once   sync.Once
	cancel func()
	wrote  bool
}

func (c *cancelWriter) Write(p []byte) (int, error) {
	c.wrote = true
	c.once.Do(c.cancel)
	return len(p), nil
}

// A server that does not answer is an operational error naming it.
func (s *suite) serverDown(t *testing.T) {
	e := s.newEnv(t)
	ctx := ctxFor(t)
	path, info := e.dump(ctx)
	u := parseURL(t, e.src)
	u.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t)))
	e.operational(ctx, u.String(), u.Host, path, info)
}

// A wrong password is an operational error naming the server, and holds
// neither password.
func (s *suite) wrongPassword(t *testing.T) {
	e := s.newEnv(t)
	ctx := ctxFor(t)
	path, info := e.dump(ctx)
	u := parseURL(t, e.src)
	wrong := "Sntl-wrong-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	u.User = url.UserPassword(u.User.Username(), wrong)
	e.secrets = append(e.secrets, wrong)
	e.operational(ctx, u.String(), u.Host, path, info)
}

// operational checks that dump, Objects and RestoreInto against dsn fail
// with an operational error that names hostport.
func (e *env) operational(ctx context.Context, dsn, hostport, path string, info *engine.DumpInfo) {
	t := e.t
	t.Helper()
	check := func(op string, err error) {
		t.Helper()
		e.noted(err)
		switch {
		case err == nil:
			t.Errorf("%s: no error", op)
		case isBad(err):
			t.Errorf("%s: blames the backup, want an operational error: %v", op, err)
		case !strings.Contains(err.Error(), hostport):
			t.Errorf("%s: the error does not name the server %s: %v", op, hostport, err)
		}
	}
	_, err := e.open(dsn).Dump(ctx, io.Discard)
	check("dump", err)
	_, err = e.eng.Objects(ctx, dsn)
	check("Objects", err)
	check("RestoreInto", e.eng.RestoreInto(ctx, dsn, path, info, engine.RestoreOptions{Jobs: 1}))
}

func parseURL(t *testing.T, dsn string) *url.URL {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil || u.Host == "" || u.User == nil {
		t.Fatalf("the suite needs URL DSNs with a user and password (scheme://user:password@host:port/...)")
	}
	return u
}

// serverOf is the Server a URL DSN names.
func serverOf(t *testing.T, dsn string) engine.Server {
	t.Helper()
	u := parseURL(t, dsn)
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatalf("DSN without a port")
	}
	pass, _ := u.User.Password()
	return engine.Server{Host: u.Hostname(), Port: port, User: u.User.Username(), Password: pass, Database: strings.TrimPrefix(u.Path, "/")}
}

// contentEqual reports the first differences between got and want.
func contentEqual(t *testing.T, what string, got, want Content) bool {
	t.Helper()
	var diffs []string
	for _, c := range slices.Sorted(maps.Keys(want)) {
		g, ok := got[c]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("container %s missing", c))
		case !maps.Equal(g, want[c]):
			for _, k := range slices.Sorted(maps.Keys(want[c])) {
				if gv, ok := g[k]; !ok || gv != want[c][k] {
					diffs = append(diffs, fmt.Sprintf("%s %s = %q, want %q", c, k, gv, want[c][k]))
				}
			}
			if len(g) != len(want[c]) {
				diffs = append(diffs, fmt.Sprintf("%s holds %d items, want %d", c, len(g), len(want[c])))
			}
		}
	}
	for c := range got {
		if _, ok := want[c]; !ok {
			diffs = append(diffs, fmt.Sprintf("unexpected container %s", c))
		}
	}
	if len(diffs) == 0 {
		return true
	}
	if len(diffs) > 5 {
		diffs = append(diffs[:5], fmt.Sprintf("and %d more", len(diffs)-5))
	}
	t.Errorf("%s differs:\n%s", what, strings.Join(diffs, "\n"))
	return false
}
