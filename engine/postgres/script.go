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
// restore as an SQL script instead (--single-transaction: one BEGIN at the
// start, one COMMIT at the end, none around large objects), and the psql of
// the same installation runs it without that line. The script's
// last bytes, its COMMIT among them, reach psql only once pg_restore has
// exited 0: a failed or killed pg_restore leaves the target untouched. One
// job; the script is what pg_restore itself would run.
func (e *Engine) restoreScript(ctx context.Context, tool Tool, dsn, dbArg, password, path string, in io.Reader, opts engine.RestoreOptions) error {
	psql, err := probeTool(ctx, filepath.Join(filepath.Dir(tool.Path), "psql"))
	if err != nil {
		return fmt.Errorf("pg_restore %s restores into PostgreSQL before 17 through its psql, which is missing: %w", tool.Version, err)
	}
	args := []string{"--no-owner", "--no-privileges", "--single-transaction", "--file=-"}
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
	exit := &dumpExit{done: make(chan struct{})}
	go func() { exit.err = dump.Wait(); close(exit.done) }()
	err = load.Start()
	psqlIn.Close()
	if err != nil {
		psqlInW.Close()
		stopDump()
		<-exit.done
		return fmt.Errorf("start psql: %w", err)
	}
	feed := &scriptFeed{r: bufio.NewReaderSize(script, 64<<10), exit: exit, prologue: true}
	copied := make(chan struct{})
	go func() {
		io.Copy(psqlInW, feed)
		psqlInW.Close()
		close(copied)
	}()
	lerr := load.Wait()
	ended := false // pg_restore ended by itself, not stopped below
	select {
	case <-exit.done:
		ended = true
	default:
	}
	stopDump()
	script.Close()
	<-copied
	<-exit.done
	switch {
	case ended && exit.err != nil:
		// psql got no COMMIT: nothing was kept. pg_restore's error is the cause
		// (psql may have failed too, on the statement cut short).
		return restoreError(ctx, "pg_restore", tool.Version, dsn, password, dumpErr.String(), exit.err)
	case lerr != nil:
		return restoreError(ctx, "psql", psql.Version+" (running pg_restore "+tool.Version+"'s script)", dsn, password, loadErr.String(), lerr)
	case exit.err != nil:
		return restoreError(ctx, "pg_restore", tool.Version, dsn, password, dumpErr.String(), exit.err)
	case !feed.released:
		return restoreError(ctx, "pg_restore", tool.Version, dsn, password, dumpErr.String(), errors.New("its script was cut short"))
	}
	return nil
}

// dumpExit is pg_restore's exit status, set before done is closed.
type dumpExit struct {
	done chan struct{}
	err  error
}

// setTimeout is the line of a pg_restore script's prologue older servers
// refuse. The prologue ends with it, or at the first object's header.
var setTimeout = []byte("SET transaction_timeout = 0;\n")

// tocEntry says whether line heads an object of the script ("-- Name: t;
// Type: TABLE; ...", "-- Data for Name: ..."): past the prologue.
func tocEntry(line []byte) bool {
	return bytes.HasPrefix(line, []byte("-- ")) && bytes.Contains(line, []byte("Name: ")) && bytes.Contains(line, []byte("; Type: "))
}

// holdBack is how much of the script's end waits for pg_restore's exit: more
// than the COMMIT and the footer after it.
const holdBack = 8 << 10

// scriptFeed is psql's input: pg_restore's script without the prologue's SET
// transaction_timeout, its last holdBack bytes (the COMMIT) released only
// once pg_restore exited 0.
type scriptFeed struct {
	r        *bufio.Reader
	exit     *dumpExit
	prologue bool // before the SET line or the first object
	held     []byte
	out      []byte // ready for psql
	buf      []byte
	eof      bool
	released bool
}

func (f *scriptFeed) Read(p []byte) (int, error) {
	for len(f.out) == 0 {
		if f.eof {
			return 0, io.EOF
		}
		var chunk []byte
		var err error
		if f.prologue {
			chunk, err = f.r.ReadBytes('\n')
			switch {
			case bytes.Equal(chunk, setTimeout):
				chunk, f.prologue = nil, false
			case tocEntry(chunk):
				f.prologue = false
			}
		} else {
			if f.buf == nil {
				f.buf = make([]byte, 32<<10)
			}
			n, rerr := f.r.Read(f.buf)
			chunk, err = f.buf[:n], rerr
		}
		f.held = append(f.held, chunk...)
		if n := len(f.held) - holdBack; n > 0 {
			f.out = append(f.out[:0], f.held[:n]...)
			f.held = append(f.held[:0], f.held[n:]...)
		}
		if err != nil {
			f.eof = true
			<-f.exit.done
			if err == io.EOF && f.exit.err == nil {
				f.out, f.released = append(f.out, f.held...), true
			}
			f.held = nil
		}
	}
	n := copy(p, f.out)
	f.out = f.out[n:]
	return n, nil
}
