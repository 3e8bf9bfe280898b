package redis

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestSplitArgs(t *testing.T) {
	for in, want := range map[string][]string{
		`HLEN sessions`:                 {"HLEN", "sessions"},
		`  GET   "a key"  `:             {"GET", "a key"},
		`GET 'it''s'`:                   {"GET", "its"},
		`SET k "a\"b\\c\n\x41"`:         {"SET", "k", "a\"b\\c\nA"},
		`EXISTS pre"fix"post`:           {"EXISTS", "prefixpost"},
		`GET 'no \n escapes in single'`: {"GET", `no \n escapes in single`},
		``:                              nil,
	} {
		got, err := splitArgs(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%q: %q %v, want %q", in, got, err, want)
		}
	}
	for _, in := range []string{`GET "open`, `GET 'open`, `GET "\x4"`, `GET "\xZZ"`} {
		if _, err := splitArgs(in); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

func TestParseQuery(t *testing.T) {
	for _, tc := range []struct {
		in   string
		db   int
		args []string
	}{
		{"DBSIZE", 2, []string{"DBSIZE"}},
		{"db5: HLEN h", 5, []string{"HLEN", "h"}},
		{"db0: GET db1:", 0, []string{"GET", "db1:"}},
		{"GET db5:", 2, []string{"GET", "db5:"}},
	} {
		db, args, err := parseQuery(tc.in, 2)
		if err != nil || db != tc.db || !reflect.DeepEqual(args, tc.args) {
			t.Errorf("%q: db %d %q %v", tc.in, db, args, err)
		}
	}
	for _, in := range []string{"", "db1:", "dbx: GET k", "db-1: GET k"} {
		if _, _, err := parseQuery(in, 0); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

func TestParseDSN(t *testing.T) {
	const secret = "Sntl-dsn-9d1"
	d, err := parseDSN("rediss://backup:" + secret + "@cache.internal:6380/3?cacert=/etc/ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	if !d.tls || d.user != "backup" || d.password != secret || d.addr() != "cache.internal:6380" || d.db != 3 || d.caFile != "/etc/ca.pem" {
		t.Errorf("%+v", d)
	}
	if d.String() != "rediss://cache.internal:6380" || Describe("redis://:"+secret+"@h") != "redis://h:6379" {
		t.Errorf("descriptions %q %q", d.String(), Describe("redis://:"+secret+"@h"))
	}
	for _, bad := range []string{
		"postgres://u:" + secret + "@h/db",
		"redis://:" + secret + "@/0",
		"redis://:" + secret + "@h/x",
		"redis://:" + secret + "@h?timeout=1",
		"redis://:" + secret + "@h?cacert=/x",
		"redis://:" + secret + "@h:port%zz",
	} {
		_, err := parseDSN(bad)
		if err == nil || strings.Contains(err.Error(), secret) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

// fakeMaster speaks the master's side of the replication handshake on a
// loopback port and sends a scripted snapshot: a stand-in for the server
// misbehaving in ways a real one will not on cue (truncation, corruption,
// keepalives at every step). Real servers are tested in redis_test.go.
type fakeMaster struct {
	l     net.Listener
	psync string // reply to PSYNC, sent raw; "" for an error
	sync  string // reply to SYNC, sent raw
	body  []byte // written after the reply
	hold  bool   // keep the connection open after body
}

func startFake(t *testing.T, m *fakeMaster) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.l = l
	done := make(chan struct{})
	t.Cleanup(func() { l.Close(); close(done) })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go m.serve(c, done)
		}
	}()
	return "redis://:pw@" + l.Addr().String()
}

func (m *fakeMaster) serve(c net.Conn, done chan struct{}) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		args, err := readCommand(r)
		if err != nil {
			return
		}
		var reply string
		switch strings.ToUpper(args[0]) {
		case "AUTH", "REPLCONF":
			reply = "+OK\r\n"
		case "INFO":
			body := "# Server\r\nredis_version:7.0.99\r\n"
			if args[1] == "keyspace" {
				body = "# Keyspace\r\ndb0:keys=15,expires=1,avg_ttl=0\r\ndb3:keys=1,expires=1,avg_ttl=0\r\n"
			}
			reply = fmt.Sprintf("$%d\r\n%s\r\n", len(body), body)
		case "PSYNC", "SYNC":
			reply = m.psync
			if args[0] == "SYNC" {
				reply = m.sync
			}
			if strings.HasPrefix(reply, "-") {
				break
			}
			c.Write([]byte(reply))
			c.Write(m.body)
			if m.hold {
				<-done
			}
			return
		}
		c.Write([]byte(reply))
	}
}

func readCommand(r *bufio.Reader) ([]string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	n, _ := strconv.Atoi(strings.TrimSpace(line[1:]))
	args := make([]string, n)
	for i := range args {
		if _, err := r.ReadString('\n'); err != nil {
			return nil, err
		}
		a, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		args[i] = strings.TrimSuffix(a, "\r\n")
	}
	return args, nil
}

func TestDumpFraming(t *testing.T) {
	good, err := os.ReadFile("rdb/testdata/types-v10.rdb")
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 0x04
	mark := strings.Repeat("0123456789", 4)
	full := "\n\n+FULLRESYNC 8de1787ba490483314a4d30f1c628bc5025eb761 0\r\n\n\n"
	lenHeader := func(b []byte) string { return fmt.Sprintf("$%d\r\n", len(b)) }
	eof := func(b []byte) []byte { return append(append([]byte(nil), b...), mark...) }

	for _, tc := range []struct {
		name string
		m    fakeMaster
		want string // "" for success
	}{
		{"length-prefixed", fakeMaster{psync: full + lenHeader(good), body: good}, ""},
		{"diskless, connection kept open", fakeMaster{psync: full + "$EOF:" + mark + "\r\n", body: eof(good), hold: true}, ""},
		{"no PSYNC: SYNC", fakeMaster{psync: "-ERR unknown command 'PSYNC'\r\n", sync: "\n\n" + lenHeader(good), body: good}, ""},
		{"truncated", fakeMaster{psync: full + lenHeader(good), body: good[:len(good)-100]}, "bytes of the snapshot missing"},
		{"diskless truncated", fakeMaster{psync: full + "$EOF:" + mark + "\r\n", body: good[:len(good)-3]}, "before the end of the snapshot"},
		{"diskless, marker early", fakeMaster{psync: full + "$EOF:" + mark + "\r\n", body: eof(good[:len(good)-9])}, "corrupt RDB: truncated"},
		{"flipped byte", fakeMaster{psync: full + lenHeader(flipped), body: flipped}, "damaged RDB snapshot: corrupt RDB: CRC-64"},
		{"not an RDB", fakeMaster{psync: full + "$12\r\n", body: []byte("-ERR oops\r\n\n")}, "not an RDB snapshot"},
		{"bgsave failed", fakeMaster{psync: full + "-ERR BGSAVE failed\r\n"}, "could not produce a snapshot: ERR BGSAVE failed"},
		{"refused", fakeMaster{psync: "-NOPERM this user has no permissions to run the 'psync' command\r\n", sync: "-NOPERM no sync either\r\n"}, "+psync, +sync and +replconf"},
		{"managed service", fakeMaster{psync: "-ERR unknown command 'PSYNC'\r\n", sync: "-ERR unknown command 'SYNC'\r\n"}, "replication commands are disabled or renamed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dsn := startFake(t, &tc.m)
			var out bytes.Buffer
			start := time.Now()
			info, err := New(dsn, WithIdleTimeout(5*time.Second)).Dump(context.Background(), &out)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if time.Since(start) > 3*time.Second {
				t.Errorf("took %s: waited for more than the snapshot", time.Since(start))
			}
			if !bytes.Equal(out.Bytes(), good) {
				t.Errorf("wrote %d bytes, not the snapshot's %d", out.Len(), len(good))
			}
			if info.ServerVersion != "7.0.99" || info.Tools["rdb"] != "10" || len(info.Source.Tables) != 2 ||
				info.Source.Tables[0].Name != "db0" || info.Source.Tables[0].Rows != 15 || info.Source.Tables[1].Name != "db3" {
				t.Errorf("info %+v", info)
			}
		})
	}
}

// A destination that fails is reported as such, not as a bad snapshot.
func TestDumpWriteError(t *testing.T) {
	good, _ := os.ReadFile("rdb/testdata/types-v10.rdb")
	dsn := startFake(t, &fakeMaster{psync: fmt.Sprintf("+FULLRESYNC x 0\r\n$%d\r\n", len(good)), body: good})
	_, err := New(dsn).Dump(context.Background(), failingWriter{})
	if err == nil || !strings.Contains(err.Error(), "write dump stream: disk full") {
		t.Fatalf("err %v", err)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// The marker reader hands out every byte before the marker, whatever the
// size of the reads, and nothing of the marker.
func TestMarkReader(t *testing.T) {
	mark := []byte(strings.Repeat("m", markLen))
	data := bytes.Repeat([]byte("0123456789abcdef"), 10000)
	for _, chunk := range []int{1, 39, 40, 41, 4096, 1 << 20} {
		nc1, nc2 := net.Pipe()
		go func() {
			all := append(bytes.Clone(data), mark...)
			for len(all) > 0 {
				n := min(chunk, len(all))
				nc2.Write(all[:n])
				all = all[n:]
			}
			// nothing after the marker, and the connection stays open
		}()
		c := &conn{ctx: context.Background(), nc: &guardedConn{Conn: nc1}, r: bufio.NewReaderSize(nc1, 1<<16)}
		mr := &markReader{c: c, mark: mark, buf: make([]byte, 0, 64<<10)}
		got, err := io.ReadAll(io.LimitReader(mr, int64(len(data))+1))
		nc1.Close()
		nc2.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("chunks of %d: %d bytes, %v", chunk, len(got), err)
		}
	}
}

// Commands that run code a backup brought, block, or walk the keyspace are
// refused at config load, and by the copy.
func TestRefusedChecks(t *testing.T) {
	for _, q := range []string{"EVAL_RO 'return 1' 0", "fcall_ro lib 0", "KEYS *", "db1: EVALSHA_RO abc 0", "XREAD BLOCK 0 STREAMS s $", "SCRIPT LOAD x"} {
		if err := Kind.CheckQuery(q); err == nil {
			t.Errorf("CheckQuery(%q) accepted it", q)
		}
	}
	for _, q := range []string{"DBSIZE", "db2: HLEN sessions", `GET "user:1 name"`} {
		if err := Kind.CheckQuery(q); err != nil {
			t.Errorf("CheckQuery(%q) = %v", q, err)
		}
	}
}
