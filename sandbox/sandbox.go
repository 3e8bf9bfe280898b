// Package sandbox starts throwaway database servers that verification and
// restore --sandbox load backups into. Implementations live in subpackages
// (docker, kubernetes); sandboxtest is the suite both pass.
package sandbox

import (
	"context"
	"errors"
	"time"
)

// ErrUnavailable means no sandbox could be started for a reason outside the
// backup: no container engine, a missing image, no resources. Verification
// reports it as an error, never as a bad backup.
var ErrUnavailable = errors.New("sandbox unavailable")

// Spec describes one throwaway database server.
type Spec struct {
	Image string
	Env   map[string]string // may hold a generated password: never logged
	Cmd   []string          // nil: the image's default
	Port  string            // the server's port inside the container, e.g. "5432/tcp"
	// DataDir is where the server keeps its data; drivers may put a
	// size-limited volume there ("": the image's own storage).
	DataDir string
	// Ready is a log line the server prints once it accepts connections,
	// and ReadyCount how many times it must appear (the official postgres
	// image logs it once for its init server and once for the real one).
	Ready      string
	ReadyCount int
	Memory     int64   // bytes; 0: no limit
	CPUs       float64 // 0: no limit
	// Deadline bounds the sandbox's life: a sweep by any later run removes
	// it once this has passed, even if the process that started it is alive.
	Deadline time.Time
	Labels   map[string]string // extra labels, e.g. target and backup id
	// Files are copied into the sandbox before its server starts, for
	// servers that load a backup at boot (Redis and its RDB file).
	Files []File
	// Seed, when set, lets a driver start the server on a copy of a data
	// directory prepared once, skipping the server's initialisation. Nil, or
	// a spec with Files, starts from scratch.
	Seed *Seed
}

// Seed says how a server may start from a prepared data directory: the
// DataDir of a first sandbox of the same image, DataDir and Env, stopped
// cleanly. The Env variables named in PerStart (a generated password) are
// left out of that match: the prepared data keeps the first sandbox's, and
// the server must not depend on them.
type Seed struct {
	PerStart []string
	// ReadyCount is how many times a server started from the prepared data
	// logs Ready.
	ReadyCount int
	// Prepare, when set, runs against the first server before it is
	// stopped; Variant names what it does, and is part of the match.
	Prepare func(ctx context.Context, inst Instance) error
	Variant string
}

// File is a host file to copy into a sandbox.
type File struct {
	HostPath string
	// Path is absolute in the sandbox. The root filesystem is read-only: a
	// directory outside the image's volumes becomes a volume of its own.
	Path string
	Mode int64 // permission bits; 0: 0600
}

// Digester is an Instance that knows the registry digest its image was
// pulled by ("postgres@sha256:..."): "" for an image built or imported
// locally, which only its id names.
type Digester interface {
	ImageDigest() string
}

// Provider starts sandboxes.
type Provider interface {
	// Start starts a server and waits until it is ready. On error nothing is
	// left running.
	Start(ctx context.Context, spec Spec) (Instance, error)
}

// Instance is a running sandbox.
type Instance interface {
	// Addr is where the server listens: a loopback host and a port.
	Addr() (host string, port int)
	// Image is the image reference and the image id it resolved to.
	Image() (ref, id string)
	// Check reports an error when the server is no longer running (exited)
	// or one of its processes was killed for memory, so a failed restore can
	// be told apart from a sandbox that failed under it.
	Check(ctx context.Context) error
	// Logs returns the tail of the server's output, for error messages.
	Logs(ctx context.Context) string
	// Close stops and removes the sandbox. It is safe to call more than once.
	Close(ctx context.Context) error
}
