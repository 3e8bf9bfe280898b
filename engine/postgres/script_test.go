package postgres

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestScriptFeed(t *testing.T) {
	rows := strings.Repeat("SET transaction_timeout = 0;\n", 2000) // data, longer than holdBack
	script := "--\n-- PostgreSQL database dump\n--\n\n\\restrict k\n\nBEGIN;\n\nSET statement_timeout = 0;\nSET transaction_timeout = 0;\nSET client_encoding = 'UTF8';\n\n" +
		"--\n-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: -\n--\n\nCOPY t (note) FROM stdin;\n" + rows + "\\.\n\nCOMMIT;\n\n--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict k\n\n"
	feed := func(exit error) (string, *scriptFeed) {
		return feedOf(t, script, exit)
	}

	// pg_restore exited 0: the script whole, but the prologue's SET;
	// the rows that hold the same text are data, kept.
	out, f := feed(nil)
	want := strings.Replace(script, "SET transaction_timeout = 0;\n", "", 1)
	if out != want || !f.released {
		t.Errorf("feed of a clean pg_restore: %d bytes, want %d; released %v", len(out), len(want), f.released)
	}

	// pg_restore failed: its COMMIT never reaches psql, whose transaction is
	// rolled back as it disconnects.
	out, f = feed(errors.New("exit status 1"))
	if strings.Contains(out, "COMMIT") || f.released || !strings.HasPrefix(want, out) || len(out) < len(want)-holdBack {
		t.Errorf("feed of a failed pg_restore: %d of %d bytes, released %v, ends %q", len(out), len(want), f.released, out[max(0, len(out)-40):])
	}
}

// Without the SET line (no prologue to clean), rows that hold its text
// pass: the prologue ends at the first object's header.
func TestScriptFeedKeepsRows(t *testing.T) {
	script := "BEGIN;\n\n--\n-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: -\n--\n\nCOPY t (note) FROM stdin;\nSET transaction_timeout = 0;\n\\.\n\nCOMMIT;\n"
	if out, _ := feedOf(t, script, nil); out != script {
		t.Errorf("feed:\n%q\nwant\n%q", out, script)
	}
}

func feedOf(t *testing.T, script string, exit error) (string, *scriptFeed) {
	t.Helper()
	e := &dumpExit{done: make(chan struct{}), err: exit}
	close(e.done)
	f := &scriptFeed{r: bufio.NewReaderSize(strings.NewReader(script), 16), exit: e, prologue: true}
	out, err := io.ReadAll(&small{f})
	if err != nil {
		t.Fatal(err)
	}
	return string(out), f
}

// small reads in pieces of 7 bytes, as a pipe may.
type small struct{ r io.Reader }

func (s *small) Read(p []byte) (int, error) { return s.r.Read(p[:min(len(p), 7)]) }
