package proc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const sentinel = "Sntl-proc-9c2e71"

// The secret reaches the child through its environment only, replacing an
// inherited variable of the same name; argv never holds it.
func TestCommandSecretInEnvOnly(t *testing.T) {
	t.Setenv("BP_TEST_PWD", "inherited")
	cmd := Command(context.Background(), "/usr/bin/env", []string{"BP_TEST_PWD=" + sentinel})
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.Join(cmd.Args, " "), sentinel) {
		t.Errorf("argv holds the secret: %q", cmd.Args)
	}
	env := string(out)
	if strings.Count(env, "BP_TEST_PWD=") != 1 || !strings.Contains(env, "BP_TEST_PWD="+sentinel+"\n") {
		t.Errorf("child env: want BP_TEST_PWD=%s once, got:\n%s", sentinel, env)
	}

	// An empty secret removes the inherited one and sets none.
	out, err = Command(context.Background(), "/usr/bin/env", []string{"BP_TEST_PWD="}).Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "BP_TEST_PWD") {
		t.Errorf("empty secret: child still sees BP_TEST_PWD")
	}
}

// A child sees the allow-listed variables and those its caller passes, never
// the rest of backproof's environment: other targets' DSNs, storage keys.
func TestCommandAllowListedEnv(t *testing.T) {
	const other = "Sntl-other-target-4f1d"
	t.Setenv("ORDERS_DSN", "postgres://app:"+other+"@db/orders")
	t.Setenv("AWS_SECRET_ACCESS_KEY", other)
	t.Setenv("S3_SECRET_ACCESS_KEY", other)
	t.Setenv("HOME", "/home/bp-test")
	t.Setenv("LC_TIME", "C.UTF-8")
	t.Setenv("TZ", "UTC")
	t.Setenv("PGPASSFILE", "/home/bp-test/pgpass")
	t.Setenv("PGPASSWORD", "inherited-pw")
	t.Setenv("BP_TEST_ONE", "one")

	out, err := Command(context.Background(), "/usr/bin/env", []string{"PG*", "BP_TEST_ONE", "OWN=set"}).Output()
	if err != nil {
		t.Fatal(err)
	}
	env := string(out)
	if strings.Contains(env, other) {
		t.Errorf("child sees another target's secret:\n%s", env)
	}
	for _, want := range []string{"PATH=", "HOME=/home/bp-test\n", "LC_TIME=C.UTF-8\n", "TZ=UTC\n",
		"PGPASSFILE=/home/bp-test/pgpass\n", "PGPASSWORD=inherited-pw\n", "BP_TEST_ONE=one\n", "OWN=set\n"} {
		if !strings.Contains(env, want) {
			t.Errorf("child env lacks %q:\n%s", want, env)
		}
	}
}

// Cancelling the context stops the child with SIGTERM.
func TestCommandCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cmd := Command(ctx, "/bin/sleep", nil, "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cancel()
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ProcessState.String() != "signal: terminated" {
		t.Fatalf("want the child terminated by SIGTERM, got %v", err)
	}
}

func TestTail(t *testing.T) {
	tail := &Tail{Max: 8}
	if tail.String() != "no error output" {
		t.Errorf("empty tail: %q", tail.String())
	}
	tail.Write([]byte("0123456789"))
	tail.Write([]byte("ab\n"))
	if got := tail.String(); got != "56789ab" {
		t.Errorf("tail = %q", got)
	}
	if got := Redact("pw=secret secret", "secret", ""); got != "pw=[REDACTED] [REDACTED]" {
		t.Errorf("redact = %q", got)
	}
}

func TestNewest(t *testing.T) {
	tools := []Tool{{Path: "/a", Version: "15.2", Major: 15}, {Path: "/b", Version: "17.1", Major: 17}}
	got, err := Newest("pg_dump", tools, 16, "PostgreSQL 16", "the PostgreSQL 16 client tools")
	if err != nil || got.Path != "/b" {
		t.Errorf("got %v, %v", got, err)
	}
	_, err = Newest("pg_dump", tools, 18, "PostgreSQL 18", "the PostgreSQL 18 client tools")
	if err == nil || !strings.Contains(err.Error(), "pg_dump 17.1 (/b) is older than the server (PostgreSQL 18)") {
		t.Errorf("too old: %v", err)
	}
	_, err = Newest("pg_dump", nil, 15, "PostgreSQL 15", "the PostgreSQL 15 client tools")
	if err == nil || err.Error() != "pg_dump not found: install the PostgreSQL 15 client tools" {
		t.Errorf("none: %v", err)
	}
}

// Probe reads a tool's version; Find lists each installed copy once.
func TestProbeFind(t *testing.T) {
	re := regexp.MustCompile(`\(GNU coreutils\) (\d+)(\.\d+)?`)
	tools := Find(context.Background(), "env", []string{"/usr/bin", "/usr/bin/"}, nil, "", func(ctx context.Context, p string) (Tool, error) {
		return Probe(ctx, p, re, "coreutils")
	})
	if len(tools) != 1 || tools[0].Major == 0 {
		t.Fatalf("tools = %v", tools)
	}
	if _, err := Probe(context.Background(), "/usr/bin/env", regexp.MustCompile(`\(PostgreSQL\) (\d+)`), "PostgreSQL"); err == nil || !strings.Contains(err.Error(), "no PostgreSQL version") {
		t.Errorf("wrong product: %v", err)
	}
}

// A tool run through StdoutBuffer gets stdbuf's request for a 1 MiB stdout
// buffer; without stdbuf on PATH it runs as it is.
func TestStdoutBuffer(t *testing.T) {
	env, err := exec.LookPath("env")
	if err != nil {
		t.Fatal(err)
	}
	path, args := StdoutBuffer(1<<20, env)
	out, err := Command(context.Background(), path, nil, args...).Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "_STDBUF_O=1048576\n") {
		t.Errorf("%s %q: the tool's environment has no stdout buffer request:\n%s", path, args, out)
	}

	t.Setenv("PATH", t.TempDir())
	if path, args := StdoutBuffer(1<<20, env, "-0"); path != env || len(args) != 1 || args[0] != "-0" {
		t.Errorf("without stdbuf: %s %q", path, args)
	}
}

// fakeTool writes an executable script at path that prints version and
// counts its runs in path+".runs".
func fakeTool(t *testing.T, path, version string) {
	t.Helper()
	script := fmt.Sprintf("#!/bin/sh\necho x >> '%s.runs'\necho 'tool (Fake) %s'\n", path, version)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

func runs(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path + ".runs")
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "x")
}

var fakeRE = regexp.MustCompile(`\(Fake\) (\d+)(\.\d+)?`)

// A program is asked its version once for as long as its file stays the
// same; a changed file, even of the same size and modification time, is
// asked again.
func TestProbeCached(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tool")
	fakeTool(t, path, "15.1")
	for range 3 {
		if got, err := Probe(ctx, path, fakeRE, "Fake"); err != nil || got.Version != "15.1" {
			t.Fatalf("Probe = %v, %v", got, err)
		}
	}
	if n := runs(t, path); n != 1 {
		t.Errorf("ran %d times, want 1", n)
	}
	// Another expression is another question.
	other := regexp.MustCompile(`tool \(Fake\) (\d+)`)
	if got, err := Probe(ctx, path, other, "Fake"); err != nil || got.Version != "15" {
		t.Fatalf("other expression: Probe = %v, %v", got, err)
	}

	// An upgrade in place to a version of the same length, its
	// modification time put back.
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	fakeTool(t, path, "15.2")
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if got, err := Probe(ctx, path, fakeRE, "Fake"); err != nil || got.Version != "15.2" {
		t.Fatalf("same size and time: Probe = %v, %v", got, err)
	}
	// A new file renamed over the old one.
	next := path + ".new"
	fakeTool(t, next, "16.3")
	if err := os.Rename(next, path); err != nil {
		t.Fatal(err)
	}
	if got, err := Probe(ctx, path, fakeRE, "Fake"); err != nil || got.Version != "16.3" || got.Major != 16 {
		t.Fatalf("renamed over: Probe = %v, %v", got, err)
	}
}

// A link to the dispatcher on PATH (Debian's pg_wrapper) is not asked when
// the versioned directories hold copies, and never cached; a link to a
// program of another name is asked like any copy.
func TestFindDispatcher(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	wrapper := filepath.Join(dir, "share", "wrapper")
	fakeTool(t, wrapper, "16.1")
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(wrapper, filepath.Join(bin, "tool")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin)
	probe := func(ctx context.Context, p string) (Tool, error) { return Probe(ctx, p, fakeRE, "Fake") }
	globs := []string{filepath.Join(dir, "v*") + "/"}

	if tools := Find(ctx, "tool", nil, globs, "wrapper", probe); len(tools) != 1 || tools[0].Major != 16 {
		t.Fatalf("only the dispatcher: %v", tools)
	}
	Find(ctx, "tool", nil, globs, "wrapper", probe)
	if n := runs(t, wrapper); n != 2 {
		t.Errorf("dispatcher ran %d times in two Finds, want 2 (never cached)", n)
	}

	copy := filepath.Join(dir, "v15", "tool")
	fakeTool(t, copy, "15.1")
	tools := Find(ctx, "tool", nil, globs, "wrapper", probe)
	if len(tools) != 1 || tools[0].Path != copy {
		t.Fatalf("with a versioned copy: %v, want only %s", tools, copy)
	}
	if n := runs(t, wrapper); n != 2 {
		t.Errorf("dispatcher ran again (%d) with a versioned copy there", n)
	}

	// Not the dispatcher: /usr/local/bin/pg_dump -> /opt/pg17/bin/pg_dump17.
	if tools := Find(ctx, "tool", nil, globs, "pg_wrapper", probe); len(tools) != 2 {
		t.Errorf("a link to another program: %v, want it and the copy", tools)
	}
}
