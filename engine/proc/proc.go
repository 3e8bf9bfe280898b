// Package proc runs the database tools an engine drives (pg_dump,
// pg_restore, mysqldump...): argv without a shell, secrets only in the
// child's environment, SIGTERM on cancellation with a hard kill after a grace
// period, a bounded tail of stderr for errors, and discovery of the installed
// copies of a tool with their versions.
package proc

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// WaitDelay is how long a cancelled child has after SIGTERM before it is
// killed and its pipes are closed.
const WaitDelay = 10 * time.Second

// Command builds a child process running path with args. The child does not
// inherit backproof's environment, which holds other targets' DSNs and the
// storage keys: it gets the variables of [Allowed] that are set, and env.
// An env entry "KEY=VALUE" sets KEY (a secret such as "PGPASSWORD=..." goes
// here, never on argv) and replaces any inherited KEY; "KEY=" removes it; an
// entry "KEY" passes the inherited KEY through, and "PREFIX*" every inherited
// variable whose name starts with PREFIX (a tool's own settings: "PG*").
// Cancelling ctx sends SIGTERM; WaitDelay later the child is killed.
func Command(ctx context.Context, path string, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = Environ(os.Environ(), env)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = WaitDelay
	return cmd
}

// StdoutBuffer returns the path and arguments that run path with its
// standard output written n bytes at a time (coreutils' stdbuf), or path and
// args as they are where stdbuf is not installed. A C tool writing through
// stdio to a pipe writes 4 KiB at a time, the pipe's block size, and every
// write wakes the reader: pg_dump makes about 50,000 writes for 200 MB.
func StdoutBuffer(n int, path string, args ...string) (string, []string) {
	stdbuf, err := exec.LookPath("stdbuf")
	if err != nil {
		return path, args
	}
	return stdbuf, append([]string{"-o" + strconv.Itoa(n), path}, args...)
}

// Allowed are the inherited variables every child gets: where to find
// programs and the user's files (~/.pgpass), the locale and the time zone.
var Allowed = []string{"PATH", "HOME", "USER", "LOGNAME", "TZ", "TMPDIR", "LANG", "LANGUAGE", "LC_*"}

// Environ is the environment Command gives a child, from the parent's
// environment inherited and the child's own entries env (see Command).
func Environ(inherited, env []string) []string {
	pass := append([]string(nil), Allowed...)
	own := map[string]bool{}
	var set []string
	for _, kv := range env {
		k, v, hasValue := strings.Cut(kv, "=")
		switch {
		case !hasValue:
			pass = append(pass, k)
		case v == "":
			own[k] = true // removes the inherited one, sets none
		default:
			own[k] = true
			set = append(set, kv)
		}
	}
	allowed := func(k string) bool {
		for _, p := range pass {
			if p == k || strings.HasSuffix(p, "*") && strings.HasPrefix(k, strings.TrimSuffix(p, "*")) {
				return true
			}
		}
		return false
	}
	out := make([]string, 0, len(pass)+len(set))
	for _, kv := range inherited {
		if k, _, _ := strings.Cut(kv, "="); k != "" && !own[k] && allowed(k) {
			out = append(out, kv)
		}
	}
	return append(out, set...)
}

// Tail keeps the last Max bytes written to it (a child's stderr), for the
// error that reports the child's failure.
type Tail struct {
	Max int // 0: 4096
	buf []byte
}

func (t *Tail) Write(p []byte) (int, error) {
	max := t.Max
	if max <= 0 {
		max = 4096
	}
	t.buf = append(t.buf, p...)
	if len(t.buf) > max {
		t.buf = t.buf[len(t.buf)-max:]
	}
	return len(p), nil
}

// String is what was kept, trimmed, or "no error output".
func (t *Tail) String() string {
	s := strings.TrimSpace(string(t.buf))
	if s == "" {
		return "no error output"
	}
	return s
}

// Redact replaces every non-empty secret in s.
func Redact(s string, secrets ...string) string {
	for _, secret := range secrets {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "[REDACTED]")
		}
	}
	return s
}

// Tool is an installed client program and its version.
type Tool struct {
	Path    string
	Version string // as printed, e.g. "15.18"
	Major   int
}

// Probe runs "<path> --version" and reads the version with re, whose first
// group is the major version and whose second, optional, the rest (".18").
// flavor names the expected product in the error when re does not match.
// Answers are kept for as long as the file stays the same (same file, size,
// modification and change times), except for a link to a program of
// another name, such as Debian's pg_wrapper, whose answer changes when a
// version is installed.
func Probe(ctx context.Context, path string, re *regexp.Regexp, flavor string) (Tool, error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return Tool{}, err
	}
	if filepath.Base(real) != filepath.Base(path) {
		return runProbe(ctx, path, re, flavor)
	}
	key, fi, err := probeKeyOf(path, real, re)
	if err != nil {
		return Tool{}, err
	}
	if v, ok := probed.Load(key); ok && os.SameFile(v.(probeAnswer).fi, fi) {
		return v.(probeAnswer).tool, nil
	}
	t, err := runProbe(ctx, path, re, flavor)
	if err != nil {
		return t, err
	}
	// Kept only if the file did not change under the probe.
	if after, fi2, err := probeKeyOf(path, real, re); err == nil && after == key && os.SameFile(fi, fi2) {
		if r, err := filepath.EvalSymlinks(path); err == nil && r == real {
			probed.Store(key, probeAnswer{fi, t})
		}
	}
	return t, nil
}

func probeKeyOf(path, real string, re *regexp.Regexp) (probeKey, os.FileInfo, error) {
	fi, err := os.Stat(real)
	if err != nil {
		return probeKey{}, nil, err
	}
	return probeKey{path, re.String(), fi.Size(), fi.ModTime().UnixNano(), changeTime(fi)}, fi, nil
}

// probed holds Probe's answers: a backup or a verification looks for its
// tools each time, and "pg_restore --version" takes 2 ms, through Debian's
// pg_wrapper 20 ms.
var probed sync.Map // probeKey → probeAnswer

type probeKey struct {
	path, re          string
	size, mod, change int64
}

type probeAnswer struct {
	fi   os.FileInfo
	tool Tool
}

func runProbe(ctx context.Context, path string, re *regexp.Regexp, flavor string) (Tool, error) {
	cmd := exec.CommandContext(ctx, path, "--version")
	cmd.Env = Environ(os.Environ(), nil)
	out, err := cmd.Output()
	if err != nil {
		return Tool{}, fmt.Errorf("%s --version: %w", path, err)
	}
	m := re.FindStringSubmatch(string(out))
	if m == nil {
		return Tool{}, fmt.Errorf("%s --version printed %q: no %s version", path, strings.TrimSpace(string(out)), flavor)
	}
	major, _ := strconv.Atoi(m[1])
	v := m[1]
	if len(m) > 2 {
		v += m[2]
	}
	return Tool{Path: path, Version: v, Major: major}, nil
}

// Find lists the installed copies of a tool: in dirs when given, else the
// one on PATH and those matching globs (distributions install versions side
// by side, e.g. "/usr/lib/postgresql/*/bin/"), each once, with the version
// probe reads. Copies probe rejects are left out. A link to the program
// named dispatcher (Debian's pg_wrapper) runs one of the copies the globs
// find: it is probed only when they find none.
func Find(ctx context.Context, name string, dirs, globs []string, dispatcher string, probe func(ctx context.Context, path string) (Tool, error)) []Tool {
	var paths []string
	if len(dirs) > 0 {
		for _, d := range dirs {
			paths = append(paths, filepath.Join(d, name))
		}
	} else {
		if p, err := exec.LookPath(name); err == nil {
			paths = append(paths, p)
		}
		for _, pattern := range globs {
			m, _ := filepath.Glob(pattern + name)
			paths = append(paths, m...)
		}
	}
	var tools []Tool
	var dispatchers []string
	seen := map[string]bool{}
	for _, p := range paths {
		real, err := filepath.EvalSymlinks(p)
		if err != nil || seen[real] {
			continue
		}
		seen[real] = true
		if dispatcher != "" && filepath.Base(real) == dispatcher {
			dispatchers = append(dispatchers, p)
			continue
		}
		if t, err := probe(ctx, p); err == nil {
			tools = append(tools, t)
		}
	}
	for _, p := range dispatchers {
		if len(tools) > 0 {
			break
		}
		if t, err := probe(ctx, p); err == nil {
			tools = append(tools, t)
		}
	}
	return tools
}

// Newest returns the tool of the highest major version, which must be at
// least min: a dump tool older than the server cannot be trusted with it.
// server names the server for the errors ("PostgreSQL 16"), install what to
// install ("the PostgreSQL 16 client tools").
func Newest(name string, tools []Tool, min int, server, install string) (Tool, error) {
	if len(tools) == 0 {
		return Tool{}, fmt.Errorf("%s not found: install %s", name, install)
	}
	sorted := append([]Tool(nil), tools...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Major > sorted[j].Major })
	best := sorted[0]
	if best.Major < min {
		return Tool{}, fmt.Errorf("%s %s (%s) is older than the server (%s) and cannot handle it: install %s or newer",
			name, best.Version, best.Path, server, install)
	}
	return best, nil
}
