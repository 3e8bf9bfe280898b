package postgres

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestScriptFeed(t *testing.T) {
	script := "--\n-- PostgreSQL database dump\n--\n\\restrict k\n\nSET statement_timeout = 0;\nSET transaction_timeout = 0;\nSET client_encoding = 'UTF8';\n\n" +
		"--\n-- Name: t; Type: TABLE\n--\n\nCREATE TABLE t (note text);\nCOPY t (note) FROM stdin;\nSET transaction_timeout = 0;\n\\.\n"
	feed := func(exit error) (string, *scriptFeed) {
		done := make(chan error, 1)
		done <- exit
		f := &scriptFeed{r: bufio.NewReaderSize(strings.NewReader(script), 16), done: done, prologue: true}
		out, err := io.ReadAll(iotest(f))
		if err != nil {
			t.Fatal(err)
		}
		return string(out), f
	}

	out, f := feed(nil)
	want := "BEGIN;\n" + strings.Replace(script, "SET transaction_timeout = 0;\n", "", 1) + "\nCOMMIT;\n"
	if out != want || !f.committed {
		t.Errorf("feed of a clean pg_restore:\n%q\nwant\n%q", out, want)
	}
	// A row holding the same text, after the prologue, is data: kept.
	if !strings.Contains(out, "COPY t (note) FROM stdin;\nSET transaction_timeout = 0;\n") {
		t.Error("the row was dropped")
	}

	// pg_restore failed: the script ends without COMMIT (psql's transaction
	// is rolled back as it disconnects).
	out, f = feed(errors.New("exit status 1"))
	if strings.Contains(out, "COMMIT") || f.committed || f.dumpErr == nil {
		t.Errorf("feed of a failed pg_restore ends %q, committed %v", out[len(out)-20:], f.committed)
	}
}

// iotest reads in small pieces, as a pipe may.
func iotest(r io.Reader) io.Reader { return &small{r} }

type small struct{ r io.Reader }

func (s *small) Read(p []byte) (int, error) { return s.r.Read(p[:min(len(p), 7)]) }
