package mysql

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/backproof/backproof/engine"
	"github.com/backproof/backproof/internal/testenv"
)

// In a sandbox of the flavor's image at the source's version: the dump
// loads with the flavor's own client, and through Restore (also over a
// copy, as --force does); the copy shows exactly what the dump recorded,
// CHECK TABLE passes, checks answer, and a writing check is refused.
func TestSandbox(t *testing.T) {
	for _, s := range testenv.MySQLServers {
		t.Run(s.Name, func(t *testing.T) {
			tmpl := s.Image(t)
			testenv.NoSandboxesLeft(t)
			ctx := context.Background()
			src := s.NewDB(t)
			fixture(t, src)
			e := New(s.Flavor, src)
			path, info := dumpTo(t, e)
			db := dbName(t, src)

			pw := "Sandbox-Pw-'\\-" + strings.Repeat("x", 12)
			spec, srv := e.Sandbox(strings.ReplaceAll(tmpl, "{version}", shortVersion(info.ServerVersion)), pw, info)
			id := strconv.FormatInt(time.Now().UnixNano(), 36)
			spec.Labels = map[string]string{"org.backproof.test": id}
			srv.Host, srv.Port = testenv.StartSandbox(t, spec)

			// The escape hatch: the flavor's own client loads the dump.
			client := "mysql"
			if s.Flavor == MariaDB {
				client = "mariadb"
			}
			out, err := exec.Command("docker", "ps", "-q", "--filter", "label=org.backproof.test="+id).Output()
			if err != nil || len(bytes.TrimSpace(out)) == 0 {
				t.Fatalf("find the sandbox container: %v", err)
			}
			f, _ := os.Open(path)
			load := exec.Command("docker", "exec", "-i", "-e", "MYSQL_PWD", strings.TrimSpace(string(out)), client, "-uroot")
			load.Env = append(os.Environ(), "MYSQL_PWD="+pw)
			load.Stdin = f
			if out, err := load.CombinedOutput(); err != nil {
				t.Fatalf("%s < dump.sql: %v: %s", client, err, out)
			}
			f.Close()
			observe := func(what string) engine.Copy {
				c, err := e.Open(ctx, srv)
				if err != nil {
					t.Fatal(err)
				}
				got, err := c.Observe(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got.Tables, info.Source.Tables) || !reflect.DeepEqual(got.Objects, info.Source.Objects) {
					t.Errorf("%s: the copy differs:\ndump %v %v\ncopy %v %v", what, info.Source.Tables, info.Source.Objects, got.Tables, got.Objects)
				}
				return c
			}
			observe("loaded by " + client).Close(ctx)

			if err := e.Restore(ctx, srv, path, info, engine.RestoreOptions{Clean: true}); err != nil {
				t.Fatalf("restore over the copy: %v", err)
			}
			c := observe("restored")
			defer c.Close(ctx)
			if checked, err := c.Integrity(ctx); err != nil || checked != "5 tables" {
				t.Errorf("CHECK TABLE = %q, %v; want 5 tables", checked, err)
			}

			v, err := c.Query(ctx, "SELECT COUNT(*) FROM "+quote(db)+".customers WHERE note IS NULL")
			if err != nil || v.Text != "166" {
				t.Errorf("count = %+v, %v; want 166", v, err)
			}
			v, err = c.Query(ctx, "SELECT MAX(created) FROM "+quote(db)+".customers")
			if err != nil || v.Time == nil || time.Since(*v.Time) > time.Hour || time.Since(*v.Time) < -time.Hour {
				t.Errorf("max(created) = %+v, %v; want a recent time", v, err)
			}
			for _, q := range []string{
				"DELETE FROM " + quote(db) + ".legacy",
				"CREATE TABLE " + quote(db) + ".x (i INT)",
				"SELECT 1, 2",
			} {
				if _, err := c.Query(ctx, q); !errors.Is(err, engine.ErrQuery) {
					t.Errorf("%s = %v, want ErrQuery", q, err)
				}
			}
			if v, err := c.Query(ctx, "SELECT COUNT(*) FROM "+quote(db)+".legacy"); err != nil || v.Text != "3" {
				t.Errorf("after the refused writes legacy has %+v rows (%v), want 3", v, err)
			}
		})
	}
}
