package postgres

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Tool is a PostgreSQL client program and its major version.
type Tool struct {
	Path    string
	Version string // as printed, e.g. "15.18"
	Major   int
}

var versionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)(\.\d+)?`)

// probeTool runs "<path> --version".
func probeTool(ctx context.Context, path string) (Tool, error) {
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return Tool{}, fmt.Errorf("%s --version: %w", path, err)
	}
	m := versionRE.FindStringSubmatch(string(out))
	if m == nil {
		return Tool{}, fmt.Errorf("%s --version printed %q: no PostgreSQL version", path, strings.TrimSpace(string(out)))
	}
	major, _ := strconv.Atoi(m[1])
	return Tool{Path: path, Version: m[1] + m[2], Major: major}, nil
}

// findTools lists the installed copies of a client program: the one on PATH
// and the versioned ones distributions install side by side.
func findTools(ctx context.Context, name string, binDirs []string) []Tool {
	var paths []string
	if len(binDirs) > 0 {
		for _, d := range binDirs {
			paths = append(paths, filepath.Join(d, name))
		}
	} else {
		if p, err := exec.LookPath(name); err == nil {
			paths = append(paths, p)
		}
		for _, pattern := range []string{"/usr/lib/postgresql/*/bin/", "/usr/pgsql-*/bin/", "/usr/local/pgsql/bin/"} {
			m, _ := filepath.Glob(pattern + name)
			paths = append(paths, m...)
		}
	}
	var tools []Tool
	seen := map[string]bool{}
	for _, p := range paths {
		real, err := filepath.EvalSymlinks(p)
		if err != nil || seen[real] {
			continue
		}
		seen[real] = true
		if t, err := probeTool(ctx, p); err == nil {
			tools = append(tools, t)
		}
	}
	return tools
}

// pickTool chooses the newest tool, which must be at least serverMajor:
// pg_dump refuses servers newer than itself, and pg_restore must be at least
// as new as the pg_dump that wrote the archive.
func pickTool(name string, tools []Tool, serverMajor int) (Tool, error) {
	if len(tools) == 0 {
		return Tool{}, fmt.Errorf("%s not found: install the PostgreSQL %d client tools", name, serverMajor)
	}
	sorted := append([]Tool(nil), tools...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Major > sorted[j].Major })
	best := sorted[0]
	if best.Major < serverMajor {
		return Tool{}, fmt.Errorf("%s %s (%s) is older than the server (PostgreSQL %d) and cannot handle it: install the PostgreSQL %d client tools or newer",
			name, best.Version, best.Path, serverMajor, serverMajor)
	}
	return best, nil
}

// NewestDump returns the newest installed pg_dump; false when there is none.
// A server of its major or older can be dumped.
func NewestDump(ctx context.Context) (Tool, bool) {
	t, err := pickTool("pg_dump", findTools(ctx, "pg_dump", nil), 0)
	return t, err == nil
}
