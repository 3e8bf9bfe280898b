package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/backproof/backproof/engine"
	"github.com/backproof/backproof/sandbox"
)

var (
	_ engine.PreloadChooser = (*Engine)(nil)
	_ engine.Preloader      = inSandbox{}
)

// Where a preloaded backup and its restore script go in the sandbox: the
// init directory of the official postgres image (and of the sandbox
// images), whose *.sh scripts the entrypoint runs against its temporary
// server, before the real one starts.
const (
	initDir     = "/docker-entrypoint-initdb.d"
	preloadDump = initDir + "/backproof.pgdump"
)

// preloadScript restores the backup with the image's own pg_restore, over
// the init server's socket, as its superuser, in one transaction; any error
// stops the entrypoint (set -e), so the server never starts.
const preloadScript = `#!/bin/sh
# backproof: restore the backup with this image's pg_restore.
set -e
echo "backproof: restoring with $(pg_restore --version)"
pg_restore --exit-on-error --no-owner --no-privileges --single-transaction \
	--username="$POSTGRES_USER" --dbname="$POSTGRES_DB" ` + preloadDump + `
echo "backproof: restore done"
`

// Preloader implements engine.PreloadChooser: a backup whose pg_dump is
// newer than every pg_restore on this host is restored by the sandbox's own
// pg_restore (an image of the source's major carries a new enough one), so
// verification does not depend on the host's client tools.
func (e *Engine) Preloader(ctx context.Context, info *engine.DumpInfo) engine.Preloader {
	if _, err := pickTool("pg_restore", findTools(ctx, "pg_restore", e.binDirs), DumpMajor(info)); err == nil {
		return nil
	}
	return inSandbox{e}
}

// inSandbox restores with the sandbox image's pg_restore, as the sandbox
// starts.
type inSandbox struct{ *Engine }

// Preload implements engine.Preloader: it puts the archive and a script
// that restores it into the sandbox's init directory. The host cannot read
// the archive (its pg_restore is too old): only its magic is checked here,
// the sandbox's pg_restore judges the rest.
func (e inSandbox) Preload(ctx context.Context, spec *sandbox.Spec, srv engine.Server, path string, info *engine.DumpInfo) error {
	if err := checkMagic(path); err != nil {
		return err
	}
	script := filepath.Join(filepath.Dir(path), "backproof-restore.sh")
	if err := os.WriteFile(script, []byte(preloadScript), 0o700); err != nil {
		return err
	}
	e.log.InfoContext(ctx, "this host's pg_restore is older than the backup's pg_dump: the sandbox image's pg_restore restores it",
		"pg_dump", info.Tools["pg_dump"], "image", spec.Image)
	// The entrypoint runs as postgres: both files readable by everyone in
	// the throwaway container.
	spec.Files = append(spec.Files,
		sandbox.File{HostPath: path, Path: preloadDump, Mode: 0o644},
		sandbox.File{HostPath: script, Path: initDir + "/backproof-restore.sh", Mode: 0o755})
	return nil
}

// LoadFailed implements engine.Preloader: pg_restore's own error means the
// backup did not restore; an archive the image's pg_restore cannot read at
// all means the image is older than the backup, not that the backup is bad.
func (e inSandbox) LoadFailed(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "unsupported version") && strings.Contains(msg, "file header"):
		return fmt.Errorf("the sandbox image's pg_restore is older than the backup's pg_dump; set sandbox.images.postgres to an image of the source's major (postgres:{major}): %w", err)
	case strings.Contains(msg, "pg_restore: error:"):
		return fmt.Errorf("%w: the sandbox's pg_restore rejected the backup: %w", engine.ErrRestore, err)
	case strings.Contains(msg, "pg_restore: not found"), strings.Contains(msg, "pg_restore: command not found"):
		return errors.Join(errors.New("the sandbox image has no pg_restore"), err)
	}
	return err
}

// checkMagic refuses a file that does not start like a custom-format archive.
func checkMagic(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	head := make([]byte, len(archiveMagic))
	if _, err := io.ReadFull(f, head); err != nil || !bytes.Equal(head, archiveMagic) {
		return fmt.Errorf("%w: %w: %s is not a custom-format archive", engine.ErrRestore, engine.ErrCorrupt, filepath.Base(path))
	}
	return nil
}
