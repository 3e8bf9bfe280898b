package postgres

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/backproof/backproof/engine"
	"github.com/backproof/backproof/engine/proc"
)

// restoreScript restores into a server older than 17 with a pg_restore of 17
// or newer, which opens every restore into a database with SET
// transaction_timeout, a setting such servers refuse. pg_restore writes the
// restore as an SQL script instead; psql of the same installation runs it
// without that line, in one transaction that is committed only once
// pg_restore has finished cleanly: a failed or killed pg_restore leaves the
// target untouched. One job; the script is what pg_restore itself would run.
func (e *Engine) restoreScript(ctx context.Context, tool Tool, dsn, dbArg, password, path string, in io.Reader, opts engine.RestoreOptions) error {
	psql, err := probeTool(ctx, filepath.Join(filepath.Dir(tool.Path), "psql"))
	if err != nil {
		return fmt.Errorf("pg_restore %s restores into PostgreSQL before 17 through its psql, which is missing: %w", tool.Version, err)
	}
	args := []string{"--no-owner", "--no-privileges", "--file=-"}
	if opts.Clean {
		args = append(args, "--clean", "--if-exists")
	}
	if in == nil {
		args = append(args, "--", path)
	}
	dctx, stopDump := context.WithCancel(ctx)
	defer stopDump()
	dump := command(dctx, tool.Path, "", args...)
	if in != nil {
		dump.Stdin = in
		if opts.Progress != nil {
			dump.Stdin = io.TeeReader(in, opts.Progress)
		}
	}
	dumpErr, loadErr := &proc.Tail{}, &proc.Tail{}
	dump.Stderr = dumpErr
	load := command(ctx, psql.Path, password, "-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=1", "--dbname="+dbArg)
	load.Stdout, load.Stderr = io.Discard, loadErr

	// Two pipes and a copier of our own: when psql stops early, pg_restore
	// is stopped at once rather than left converting the rest of the archive.
	script, scriptW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer script.Close()
	psqlIn, psqlInW, err := os.Pipe()
	if err != nil {
		scriptW.Close()
		return err
	}
	dump.Stdout, load.Stdin = scriptW, psqlIn
	e.log.DebugContext(ctx, "starting pg_restore into a script for psql", "path", tool.Path, "version", tool.Version, "psql", psql.Version)
	err = dump.Start()
	scriptW.Close()
	if err != nil {
		psqlIn.Close()
		psqlInW.Close()
		return fmt.Errorf("start pg_restore: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- dump.Wait() }()
	err = load.Start()
	psqlIn.Close()
	if err != nil {
		psqlInW.Close()
		stopDump()
		<-done
		return fmt.Errorf("start psql: %w", err)
	}
	feed := &scriptFeed{r: bufio.NewReaderSize(script, 64<<10), done: done, prologue: true}
	copied := make(chan struct{})
	go func() {
		io.Copy(psqlInW, feed)
		psqlInW.Close()
		close(copied)
	}()
	lerr := load.Wait()
	stopDump()
	script.Close()
	<-copied
	if !feed.waited {
		feed.dumpErr = <-done
	}
	switch {
	case lerr != nil:
		return restoreError(ctx, "psql", psql.Version+" (running pg_restore "+tool.Version+"'s script)", dsn, password, loadErr.String(), lerr)
	case feed.dumpErr != nil:
		// psql read the script to its end without a COMMIT: nothing was kept.
		return restoreError(ctx, "pg_restore", tool.Version, dsn, password, dumpErr.String(), feed.dumpErr)
	case !feed.committed:
		return restoreError(ctx, "pg_restore", tool.Version, dsn, password, dumpErr.String(), errors.New("its script was cut short"))
	}
	return nil
}

// setTimeout is the line of a pg_restore script's prologue older servers
// refuse.
var setTimeout = []byte("SET transaction_timeout = 0;\n")

// scriptFeed is psql's input: BEGIN, pg_restore's script without its SET
// transaction_timeout, and COMMIT only once pg_restore exited 0.
type scriptFeed struct {
	r         *bufio.Reader
	done      <-chan error
	prologue  bool // before the script's first object ("-- Name: ")
	begun     bool
	pending   []byte
	eof       bool
	waited    bool
	committed bool
	dumpErr   error
}

func (f *scriptFeed) Read(p []byte) (int, error) {
	for len(f.pending) == 0 {
		switch {
		case f.eof:
			return 0, io.EOF
		case !f.begun:
			f.begun, f.pending = true, []byte("BEGIN;\n")
		case f.prologue:
			line, err := f.r.ReadBytes('\n')
			if bytes.HasPrefix(line, []byte("-- Name: ")) {
				f.prologue = false
			}
			if !f.prologue || !bytes.Equal(line, setTimeout) {
				f.pending = line
			}
			if err != nil {
				f.end(err)
			}
		default:
			n, err := f.r.Read(p)
			if err != nil {
				f.end(err)
			}
			if n > 0 {
				return n, nil
			}
		}
	}
	n := copy(p, f.pending)
	f.pending = f.pending[n:]
	return n, nil
}

// end follows the end of pg_restore's output: COMMIT when it exited 0.
func (f *scriptFeed) end(err error) {
	f.eof, f.waited, f.dumpErr = true, true, <-f.done
	if err == io.EOF && f.dumpErr == nil {
		f.committed = true
		f.pending = append(f.pending, "\nCOMMIT;\n"...)
	}
}
