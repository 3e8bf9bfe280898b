package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/config"
	"github.com/backproof/backproof/crypt"
	"github.com/backproof/backproof/internal/redact"
	"github.com/backproof/backproof/internal/testenv"
)

// keygen runs `backproof keygen -o FILE` and returns the recipient and the
// identity's secret key line.
func keygen(t *testing.T, file string) (recipient, secret string) {
	t.Helper()
	r := runCLI(t, context.Background(), "keygen", "-o", file)
	if r.code != 0 {
		t.Fatalf("keygen exit %d: %s", r.code, r.stderr)
	}
	recipient = strings.TrimSpace(r.stdout)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		if strings.HasPrefix(line, "AGE-SECRET-KEY-1") {
			secret = strings.TrimSpace(line)
		}
	}
	if !strings.HasPrefix(recipient, "age1") || strings.Count(recipient, "\n") != 0 || secret == "" {
		t.Fatalf("keygen printed %q, wrote:\n%s", r.stdout, data)
	}
	if strings.Contains(r.stdout+r.stderr, secret) {
		t.Fatal("keygen -o printed the identity")
	}
	return recipient, secret
}

func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "backproof.key")
	recipient, _ := keygen(t, file)
	st, err := os.Stat(file)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("identity file mode %v, %v; want 0600", st.Mode(), err)
	}
	before, _ := os.ReadFile(file)
	r := runCLI(t, context.Background(), "keygen", "-o", file)
	if after, _ := os.ReadFile(file); r.code != ExitError || !strings.Contains(r.stderr, "refusing to overwrite") || !bytes.Equal(before, after) {
		t.Fatalf("second keygen -o: exit %d: %s", r.code, r.stderr)
	}
	// The file is what encryption.identity_file takes.
	cfg := writeConfig(t, fmt.Sprintf(`
encryption: {recipients: [%s], identity_file: %s}
destinations: {local: {type: local, path: %s}}
targets: {orders: {engine: postgres, dsn: "host=127.0.0.1", destinations: [local]}}
`, recipient, file, dir))
	if r := runCLI(t, context.Background(), "config", "check", "-c", cfg); r.code != 0 {
		t.Fatalf("config check exit %d: %s", r.code, r.stderr)
	}
	// Without -o: identity on stdout, recipient on stderr, as age-keygen.
	r = runCLI(t, context.Background(), "keygen")
	if r.code != 0 || !strings.Contains(r.stdout, "\nAGE-SECRET-KEY-1") || !strings.HasPrefix(r.stderr, "Public key: age1") {
		t.Fatalf("keygen: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

// encryptedConfig is verifyConfig with encryption to recipient, and the
// identity file when it is not "".
func encryptedConfig(t *testing.T, dsn, image, recipient, identity string) string {
	t.Helper()
	enc := fmt.Sprintf("encryption:\n  recipients: [%s]\n", recipient)
	if identity != "" {
		enc += fmt.Sprintf("  identity_file: %s\n", identity)
	}
	return e2eConfigWith(t, dsn, testenv.S3(t).SecretKey, enc+fmt.Sprintf(`
sandbox:
  images: {postgres: "%s"}
  memory: 1GiB
  cpus: 1
  timeout: 5m`, image), `
    verify:
      checks:
        - {name: orders-present, query: SELECT count(*) FROM orders, expect: "> 0"}`)
}

// withIdentity rewrites a config's identity file.
func withIdentity(t *testing.T, cfg, from, to string) string {
	t.Helper()
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	old := "  identity_file: " + from + "\n"
	if !strings.Contains(string(data), old) {
		t.Fatalf("no %q in the config", old)
	}
	repl := ""
	if to != "" {
		repl = "  identity_file: " + to + "\n"
	}
	return writeConfig(t, strings.Replace(string(data), old, repl, 1))
}

// storedArtifact reads a backup's artifact as a destination of cfg stores it.
func storedArtifact(t *testing.T, cfgFile, dest, id, name string) []byte {
	t.Helper()
	ctx := context.Background()
	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	d, err := openDestination(ctx, cfg.Destinations[dest])
	if err != nil {
		t.Fatal(err)
	}
	return readObject(t, d, catalog.Key("orders", id, name))
}

// Encrypted backup to local and MinIO; verify and restore with the right
// identity, without one, and with a wrong one (PRODUCT.md, issues 5 and 8).
func TestEncryptedBackupVerifyRestore(t *testing.T) {
	image := testenv.PostgresImage(t)
	testenv.NoSandboxesLeft(t)
	ctx := context.Background()
	dir := t.TempDir()
	key, otherKey := filepath.Join(dir, "backproof.key"), filepath.Join(dir, "other.key")
	recipient, secret := keygen(t, key)
	_, otherSecret := keygen(t, otherKey)
	// Identities are secrets: no output of any run below may hold one.
	run := func(t *testing.T, args ...string) run {
		t.Helper()
		r := runCLI(t, ctx, args...)
		for _, s := range []string{secret, otherSecret} {
			if strings.Contains(r.stdout+r.stderr, s) {
				t.Fatalf("an identity leaked in the output of %v:\n%s\n%s", args, r.stdout, r.stderr)
			}
		}
		return r
	}
	dsn := appDB(t)
	want := counts(t, dsn)
	cfg := encryptedConfig(t, dsn, image, recipient, key)
	writer := withIdentity(t, cfg, key, "")      // public key only
	wrong := withIdentity(t, cfg, key, otherKey) // somebody else's key

	// The writer needs only the recipient.
	r := run(t, "backup", "-c", writer, "--json")
	if r.code != 0 {
		t.Fatalf("backup exit %d: %s", r.code, r.stderr)
	}
	id := decode[backupDoc](t, r.stdout).Backups[0].ID
	for _, dest := range []string{"local", "offsite"} {
		stored := storedArtifact(t, cfg, dest, id, "dump.pgdump.zst.age")
		if !bytes.HasPrefix(stored, []byte("age-encryption.org/v1\n-> X25519 ")) {
			t.Errorf("%s: stored bytes begin %q, want an age header", dest, stored[:min(len(stored), 32)])
		}
		if bytes.HasPrefix(stored, []byte{0x28, 0xb5, 0x2f, 0xfd}) || bytes.Contains(stored, []byte("PGDMP")) {
			t.Errorf("%s: stored bytes hold a zstd frame or pg_dump plaintext", dest)
		}
	}
	fp, err := crypt.Fingerprint(recipient)
	if err != nil {
		t.Fatal(err)
	}
	r = run(t, "list", "-c", writer, "--json")
	ld := decode[struct {
		Backups []struct{ Encryption *catalog.Encryption }
	}](t, r.stdout)
	for _, b := range ld.Backups {
		if e := b.Encryption; e == nil || e.Scheme != crypt.Scheme || !reflect.DeepEqual(e.RecipientFingerprints, []string{fp}) {
			t.Errorf("list shows encryption %+v, want %s to [%s]", e, crypt.Scheme, fp)
		}
	}
	if r.code != 0 || strings.Contains(r.stdout, recipient) {
		t.Errorf("list exit %d, or it shows the key rather than its fingerprint:\n%s", r.code, r.stdout)
	}

	t.Run("verify with the identity", func(t *testing.T) {
		r := run(t, "verify", "-c", cfg, "--json")
		if r.code != ExitOK {
			t.Fatalf("exit %d:\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		for _, v := range decode[verifyDoc](t, r.stdout).Verifications {
			if v.Outcome != "pass" || v.BackupID != id {
				t.Errorf("%s: %s %s", v.Destination, v.Outcome, v.Reason)
			}
		}
	})
	t.Run("verify without identity_file", func(t *testing.T) {
		r := run(t, "verify", "-c", writer, "--destination", "local", "--json")
		doc := decode[verifyDoc](t, r.stdout)
		if r.code != ExitError || !strings.Contains(r.stderr, "is encrypted") || !strings.Contains(r.stderr, "set encryption.identity_file") {
			t.Fatalf("exit %d, want 1 saying what is missing:\n%s", r.code, r.stderr)
		}
		// Nothing ran past choosing the backup: no download, no sandbox.
		if v := doc.Verifications[0]; v.Outcome != "error" || len(v.Checks) != 1 || v.Checks[0].Name != "select" {
			t.Errorf("record %+v", v)
		}
	})
	t.Run("verify with a wrong identity", func(t *testing.T) {
		r := run(t, "verify", "-c", wrong, "--json")
		if r.code != ExitError || !strings.Contains(r.stderr, "no matching key") || !strings.Contains(r.stderr, fp) {
			t.Fatalf("exit %d, want 1 with \"no matching key\":\n%s", r.code, r.stderr)
		}
		for _, v := range decode[verifyDoc](t, r.stdout).Verifications {
			if v.Outcome != "error" || len(v.Checks) != 1 {
				t.Errorf("%s: %+v", v.Destination, v)
			}
		}
	})
	t.Run("restore with a wrong or no identity touches nothing", func(t *testing.T) {
		into := testenv.NewPostgresDB(t)
		testenv.Exec(t, into, "CREATE TABLE keepme (x int); INSERT INTO keepme VALUES (42)")
		for _, c := range []struct{ cfg, msg string }{{wrong, "no matching key"}, {writer, "set encryption.identity_file"}} {
			// --force would drop what the dump holds: nothing may happen before the key is known good.
			r := run(t, "restore", "orders", "-c", c.cfg, "--to", into, "--force")
			if r.code != ExitError || !strings.Contains(r.stderr, c.msg) || !strings.Contains(r.stderr, "nothing was restored") {
				t.Fatalf("exit %d, want 1 with %q: %s", r.code, c.msg, r.stderr)
			}
			if got := counts(t, into); !reflect.DeepEqual(got, map[string]int64{"public.keepme": 1}) {
				t.Fatalf("target changed: %v", got)
			}
		}
		testenv.Exec(t, into, "DO $$ BEGIN IF (SELECT x FROM keepme) <> 42 THEN RAISE 'changed'; END IF; END $$")
	})
	t.Run("restore with the identity", func(t *testing.T) {
		into := testenv.NewPostgresDB(t)
		r := run(t, "restore", "orders", "-c", cfg, "--from", "offsite", "--to", into, "--json")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		if got := counts(t, into); !reflect.DeepEqual(got, want) {
			t.Errorf("restored counts %v, want %v", got, want)
		}
	})
	t.Run("the redactor masks identities", func(t *testing.T) {
		c, err := config.Load(cfg)
		if err != nil {
			t.Fatal(err)
		}
		msg := redact.New(c.Secrets()...).String("oops: " + secret)
		if strings.Contains(msg, secret) || !strings.Contains(msg, redact.Mask) {
			t.Errorf("redacted: %s", msg)
		}
	})
}

// A config that asks for encryption it cannot have is a config error, never
// a plaintext backup.
func TestEncryptionConfigErrors(t *testing.T) {
	dir := t.TempDir()
	recipient, _ := keygen(t, filepath.Join(dir, "good.key"))
	bad := filepath.Join(dir, "bad.key")
	if err := os.WriteFile(bad, []byte("# comment\nAGE-SECRET-KEY-1"+sentinel+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tail := fmt.Sprintf(`
destinations: {local: {type: local, path: %s}}
targets: {orders: {engine: postgres, dsn: "host=127.0.0.1", destinations: [local]}}
`, dir)
	for _, tc := range []struct{ name, enc, want string }{
		{"invalid recipient", "encryption:\n  recipients: [age1" + sentinel + "]\n", ":3: encryption.recipients[0]: not a valid age X25519 recipient"},
		{"secret key as recipient", "encryption:\n  recipients: [AGE-SECRET-KEY-1" + sentinel + "]\n", ":3: encryption.recipients[0]: this is an age secret key"},
		{"no recipients", "encryption:\n  identity_file: " + filepath.Join(dir, "good.key") + "\n", ":2: encryption.recipients: at least one recipient is required"},
		{"invalid identity", "encryption:\n  recipients: [" + recipient + "]\n  identity_file: " + bad + "\n", ":4: encryption.identity_file: " + bad + ": line 2 is not a valid age identity"},
		{"unreadable identity", "encryption:\n  recipients: [" + recipient + "]\n  identity_file: " + dir + "/absent.key\n", ":4: encryption.identity_file: open " + dir + "/absent.key: no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeConfig(t, "\n"+tc.enc+tail)
			for _, cmd := range [][]string{{"config", "check"}, {"backup"}} {
				// runCLI fails the test if the sentinel appears in any output.
				r := runCLI(t, context.Background(), append(cmd, "-c", cfg)...)
				if r.code != ExitUsage || !strings.Contains(r.stderr, cfg+tc.want) {
					t.Errorf("%v: exit %d, want 2 with %q:\n%s", cmd, r.code, tc.want, r.stderr)
				}
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 2 {
				t.Errorf("something was written to the destination: %v", entries)
			}
		})
	}
}
