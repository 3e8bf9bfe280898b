package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/config"
	"github.com/backproof/backproof/destination"
	"github.com/backproof/backproof/internal/redact"
	"github.com/backproof/backproof/internal/testenv"
	"github.com/backproof/backproof/verify"
)

// signingKeygen runs `keygen --signing -o FILE` and returns the public key
// and the private key file's base64 body, which no output may ever hold.
func signingKeygen(t *testing.T, file string) (public, private string) {
	t.Helper()
	r := runCLI(t, context.Background(), "keygen", "--signing", "-o", file)
	if r.code != 0 {
		t.Fatalf("keygen --signing exit %d: %s", r.code, r.stderr)
	}
	public = strings.TrimSpace(r.stdout)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		if !strings.HasPrefix(line, "-----") {
			private += strings.TrimSpace(line)
		}
	}
	if strings.Count(r.stdout, "\n") != 1 || !strings.HasPrefix(public, "MCowBQYDK2VwAyEA") || private == "" {
		t.Fatalf("keygen --signing printed %q, wrote:\n%s", r.stdout, data)
	}
	if strings.Contains(r.stdout+r.stderr, private) {
		t.Fatal("keygen --signing printed the private key")
	}
	return public, private
}

func TestKeygenSigning(t *testing.T) {
	file := filepath.Join(t.TempDir(), "signing.key")
	signingKeygen(t, file)
	st, err := os.Stat(file)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", st.Mode(), err)
	}
	before, _ := os.ReadFile(file)
	r := runCLI(t, context.Background(), "keygen", "--signing", "-o", file)
	if after, _ := os.ReadFile(file); r.code != ExitError || !strings.Contains(r.stderr, "refusing to overwrite") || !bytes.Equal(before, after) {
		t.Fatalf("second keygen --signing -o: exit %d: %s", r.code, r.stderr)
	}
}

// A signing config that cannot work is a config error naming the key, never
// quoting a private key.
func TestSigningConfigErrors(t *testing.T) {
	dir := t.TempDir()
	pub, _ := signingKeygen(t, filepath.Join(dir, "good.key"))
	otherPub, _ := signingKeygen(t, filepath.Join(dir, "other.key"))
	pem, _ := os.ReadFile(filepath.Join(dir, "good.key"))
	bad := filepath.Join(dir, "bad.key")
	if err := os.WriteFile(bad, []byte("-----BEGIN PRIVATE KEY-----\n"+sentinel+"\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tail := fmt.Sprintf(`
destinations: {local: {type: local, path: %s}}
targets: {orders: {engine: postgres, dsn: "host=127.0.0.1", destinations: [local]}}
`, t.TempDir())
	good := filepath.Join(dir, "good.key")
	for _, tc := range []struct{ name, block, want string }{
		{"no trusted keys", "signing:\n  key_file: " + good + "\n", ":2: signing.trusted_keys: at least one trusted public key is required"},
		{"private key as trusted key", "signing:\n  trusted_keys: [\"" + strings.ReplaceAll(string(pem), "\n", `\n`) + "\"]\n", ":3: signing.trusted_keys[0]: this is a private key"},
		{"garbage trusted key", "signing:\n  trusted_keys: [" + sentinel + "]\n", ":3: signing.trusted_keys[0]: not a public key"},
		{"malformed key file", "signing:\n  key_file: " + bad + "\n  trusted_keys: [" + pub + "]\n", ":3: signing.key_file: " + bad + ": not a PEM private key"},
		{"own key not trusted", "signing:\n  key_file: " + good + "\n  trusted_keys: [" + otherPub + "]\n", ":3: signing.key_file: its public key " + pub + " is not in signing.trusted_keys"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeConfig(t, "\n"+tc.block+tail)
			r := runCLI(t, context.Background(), "config", "check", "-c", cfg)
			if r.code != ExitUsage || !strings.Contains(r.stderr, cfg+tc.want) {
				t.Errorf("exit %d, want 2 with %q:\n%s", r.code, tc.want, r.stderr)
			}
			if strings.Contains(r.stderr, strings.Split(string(pem), "\n")[1]) {
				t.Errorf("the private key leaked:\n%s", r.stderr)
			}
		})
	}
}

// rawDestination opens a destination of cfg without the signing layer: what
// someone with write access to the bucket or folder sees.
func rawDestination(t *testing.T, cfgFile, name string) destination.Destination {
	t.Helper()
	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	d, err := openDestination(context.Background(), cfg.Destinations[name])
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func readObject(t *testing.T, d destination.Destination, key string) []byte {
	t.Helper()
	rc, err := d.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// plantCopy copies backup id's artifacts and manifest (edited by edit) to a
// new id created at created, as an attacker with write access would.
func plantCopy(t *testing.T, d destination.Destination, id string, created time.Time, edit func(newID string, manifest []byte) []byte) string {
	t.Helper()
	ctx := context.Background()
	newID := catalog.NewID(created)
	objs, err := d.List(ctx, catalog.Key("orders", id, ""))
	if err != nil {
		t.Fatal(err)
	}
	var manifest []byte
	for _, o := range objs {
		name := strings.TrimPrefix(o.Key, catalog.Key("orders", id, ""))
		switch {
		case name == catalog.ManifestName:
			manifest = readObject(t, d, o.Key)
			continue
		case strings.HasPrefix(name, "verify-"):
			continue
		}
		if err := d.Put(ctx, catalog.Key("orders", newID, name), bytes.NewReader(readObject(t, d, o.Key))); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Put(ctx, catalog.Key("orders", newID, catalog.ManifestName), bytes.NewReader(edit(newID, manifest))); err != nil {
		t.Fatal(err)
	}
	return newID
}

// Signed backups end to end on local and MinIO: a backup replayed under a new
// id, an edited row count, a swapped artifact and an unsigned record are each
// refused; nothing planted is listed as a backup, restored or counted as
// verified; the private key is never printed nor stored (issue 16).
func TestSignedBackups(t *testing.T) {
	image := testenv.PostgresImage(t)
	testenv.NoSandboxesLeft(t)
	ctx := context.Background()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "signing.key")
	pub, private := signingKeygen(t, keyFile)
	oldPub, oldPrivate := signingKeygen(t, filepath.Join(dir, "old.key"))
	run := func(t *testing.T, args ...string) run {
		t.Helper()
		r := runCLI(t, ctx, args...)
		for _, s := range []string{private, oldPrivate} {
			if strings.Contains(r.stdout+r.stderr, s) {
				t.Fatalf("a private signing key leaked in the output of %v:\n%s\n%s", args, r.stdout, r.stderr)
			}
		}
		return r
	}
	dsn := appDB(t)
	want := counts(t, dsn)
	unsignedCfg := e2eConfigWith(t, dsn, testenv.S3(t).SecretKey, fmt.Sprintf(`
sandbox:
  images: {postgres: "%s"}
  timeout: 5m`, image), "")
	data, err := os.ReadFile(unsignedCfg)
	if err != nil {
		t.Fatal(err)
	}
	// Same destinations, with signing; the old key is still trusted (rotation).
	cfg := writeConfig(t, string(data)+fmt.Sprintf("\nsigning:\n  key_file: %s\n  trusted_keys: [%s, %s]\n", keyFile, oldPub, pub))
	reader := writeConfig(t, string(data)+fmt.Sprintf("\nsigning:\n  trusted_keys: [%s]\n", pub)) // a host that only reads

	// A backup from before signing was turned on.
	r := run(t, "backup", "-c", unsignedCfg, "--json")
	if r.code != 0 {
		t.Fatalf("unsigned backup exit %d: %s", r.code, r.stderr)
	}
	before := decode[backupDoc](t, r.stdout).Backups[0].ID
	id := backupCommitted(t, cfg)
	local, offsite := rawDestination(t, cfg, "local"), rawDestination(t, cfg, "offsite")
	m := readObject(t, offsite, catalog.Key("orders", id, catalog.ManifestName))
	if !bytes.Contains(m, []byte(`"signature": {"alg":"ed25519","key":"`+pub+`"`)) {
		t.Fatalf("the manifest on MinIO is not signed by %s:\n%s", pub, m)
	}

	// What an attacker with write access plants on the local destination.
	future := time.Now().Add(time.Hour)
	replayed := plantCopy(t, local, id, future, func(newID string, m []byte) []byte {
		return bytes.Replace(m, []byte(id), []byte(newID), 1)
	})
	rowsRE := regexp.MustCompile(`"rows": (\d+)`)
	edited := plantCopy(t, local, id, future.Add(time.Second), func(newID string, m []byte) []byte {
		m = bytes.Replace(m, []byte(id), []byte(newID), 1)
		loc := rowsRE.FindSubmatchIndex(m)
		return append(append(append([]byte{}, m[:loc[2]]...), "99999"...), m[loc[3]:]...)
	})
	var man catalog.Manifest
	if err := json.Unmarshal(m, &man); err != nil {
		t.Fatal(err)
	}
	swapped := plantCopy(t, local, id, future.Add(2*time.Second), func(newID string, m []byte) []byte {
		m = bytes.Replace(m, []byte(id), []byte(newID), 1)
		return bytes.Replace(m, []byte(man.Artifacts[0].SHA256), []byte(strings.Repeat("ab", 32)), 1)
	})
	unsignedRecord := verify.Record{Format: verify.RecordFormat, Target: "orders", Destination: "local", BackupID: id,
		Outcome: verify.Pass, Started: time.Now().UTC().Add(time.Minute), Ended: time.Now().UTC().Add(2 * time.Minute)}
	recName := catalog.RecordName(unsignedRecord.Started)
	if err := catalog.WriteRecord(ctx, local, "orders", id, recName, unsignedRecord); err != nil {
		t.Fatal(err)
	}
	planted := map[string]string{replayed: "bad signature", edited: "bad signature", swapped: "bad signature", before: "unsigned"}

	t.Run("list shows planted backups as untrusted", func(t *testing.T) {
		for _, c := range []string{cfg, reader} {
			r := run(t, "list", "-c", c, "--json")
			if r.code != 0 {
				t.Fatalf("list exit %d: %s", r.code, r.stderr)
			}
			var doc struct {
				Backups []struct {
					Destination, ID, State, Problem string
					Verification                    *struct{ Outcome, Reason string }
				}
			}
			if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
				t.Fatal(err)
			}
			for _, b := range doc.Backups {
				switch why, bad := planted[b.ID]; {
				case bad && (b.State != "untrusted" || !strings.Contains(b.Problem, "not authentic: "+why)):
					t.Errorf("%s on %s: %s %q, want untrusted (%s)", b.ID, b.Destination, b.State, b.Problem, why)
				case !bad && b.ID == id && b.State != "committed":
					t.Errorf("the genuine backup on %s: %s %s", b.Destination, b.State, b.Problem)
				case b.ID == id && b.Destination == "local" && (b.Verification == nil || b.Verification.Outcome == "pass"):
					t.Errorf("the unsigned record counts: %+v", b.Verification)
				}
			}
		}
	})
	t.Run("verify refuses them: not authentic, exit 3", func(t *testing.T) {
		for _, bad := range []string{edited, before} {
			r := run(t, "verify", "-c", cfg, "--destination", "local", "--backup", bad, "--json")
			v := decode[verifyDoc](t, r.stdout).Verifications[0]
			if r.code != ExitBadBackup || v.Outcome != "fail" || !strings.Contains(v.Reason, "not authentic") || len(v.Checks) != 1 {
				t.Errorf("verify %s: exit %d, %s %q", bad, r.code, v.Outcome, v.Reason)
			}
		}
	})
	t.Run("restore takes the genuine backup and refuses the planted ones", func(t *testing.T) {
		into := testenv.NewPostgresDB(t)
		r := run(t, "restore", "orders", "-c", cfg, "--backup", swapped, "--from", "local", "--to", into)
		if r.code == 0 || !strings.Contains(r.stderr, "not authentic") {
			t.Fatalf("restore of a planted backup: exit %d: %s", r.code, r.stderr)
		}
		if got := counts(t, into); len(got) != 0 {
			t.Fatalf("something was restored: %v", got)
		}
		r = run(t, "restore", "orders", "-c", reader, "--from", "local", "--to", into, "--json")
		if r.code != 0 || !strings.Contains(r.stdout, id) {
			t.Fatalf("restore of the latest: exit %d, want %s:\n%s\n%s", r.code, id, r.stdout, r.stderr)
		}
		if got := counts(t, into); !reflect.DeepEqual(got, want) {
			t.Errorf("restored counts %v, want %v", got, want)
		}
	})
	t.Run("verify passes and its record is signed", func(t *testing.T) {
		r := run(t, "verify", "-c", cfg, "--destination", "offsite", "--json")
		v := decode[verifyDoc](t, r.stdout).Verifications[0]
		if r.code != 0 || v.Outcome != "pass" || v.BackupID != id {
			t.Fatalf("exit %d: %s %s %q\n%s", r.code, v.BackupID, v.Outcome, v.Reason, r.stderr)
		}
		rec := readObject(t, offsite, catalog.Key("orders", id, v.Record))
		if !regexp.MustCompile(`^verify-\d{8}T\d{6}Z-[0-9a-v]{8}\.json$`).MatchString(v.Record) || !bytes.Contains(rec, []byte(pub)) {
			t.Fatalf("record %s:\n%s", v.Record, rec)
		}
		r = run(t, "list", "-c", reader, "--destination", "offsite", "--json")
		for _, b := range decode[listVerifiedDoc](t, r.stdout).Backups {
			if b.ID == id && (b.Verification == nil || b.Verification.Outcome != "pass") {
				t.Errorf("list: %+v", b.Verification)
			}
		}
	})
	t.Run("receipts verify offline", func(t *testing.T) {
		var rec string
		for _, b := range decode[listVerifiedDoc](t, run(t, "list", "-c", reader, "--destination", "offsite", "--json").stdout).Backups {
			if b.ID == id && b.Verification != nil {
				rec = b.Verification.Record
			}
		}
		if rec == "" {
			t.Fatal("no record of the verification")
		}
		file := filepath.Join(t.TempDir(), rec)
		doc := readObject(t, offsite, catalog.Key("orders", id, rec))
		if err := os.WriteFile(file, doc, 0o600); err != nil {
			t.Fatal(err)
		}
		pemFile := filepath.Join(t.TempDir(), "pub.pem")
		os.WriteFile(pemFile, []byte("-----BEGIN PUBLIC KEY-----\n"+pub+"\n-----END PUBLIC KEY-----\n"), 0o644)
		for _, key := range []string{pub, pemFile} {
			r := run(t, "receipt", "verify", file, "--key", oldPub, "--key", key)
			if r.code != 0 || !strings.Contains(r.stdout, "authentic: signed by "+pub) || !strings.Contains(r.stdout, "orders backup "+id+" on offsite: pass") {
				t.Fatalf("receipt verify --key %s: exit %d:\n%s%s", key, r.code, r.stdout, r.stderr)
			}
		}
		r := run(t, "receipt", "verify", file, "--key", oldPub)
		if r.code != ExitBadBackup || !strings.Contains(r.stderr, "not authentic: signed by untrusted key") {
			t.Errorf("untrusted key: exit %d: %s", r.code, r.stderr)
		}
		os.WriteFile(file, bytes.Replace(doc, []byte(`"outcome": "pass"`), []byte(`"outcome": "fail"`), 1), 0o600)
		r = run(t, "receipt", "verify", file, "--key", pub)
		if r.code != ExitBadBackup || !strings.Contains(r.stderr, "bad signature") {
			t.Errorf("edited receipt: exit %d: %s", r.code, r.stderr)
		}
		r = run(t, "receipt", "verify", file, "--key", keyFile)
		if r.code != ExitUsage || !strings.Contains(r.stderr, "holds a private key") {
			t.Errorf("private key as --key: exit %d: %s", r.code, r.stderr)
		}
	})
	t.Run("report shows every verification and its receipt", func(t *testing.T) {
		r := run(t, "report", "-c", reader, "--since", "1d", "--format", "json")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		doc := decode[reportDoc](t, r.stdout)
		if !doc.Signed || len(doc.Targets) != 1 {
			t.Fatalf("report: %s", r.stdout)
		}
		var pass, forged, refused bool
		for _, e := range doc.Targets[0].Verifications {
			switch {
			case e.Destination == "offsite" && e.BackupID == id && e.Outcome == "pass":
				pass = e.Authentic && e.RestoreSeconds > 0 && e.BackupAge > 0 && strings.Contains(e.Receipt, pub)
			case e.Destination == "local" && e.BackupID == id:
				forged = !e.Authentic && strings.Contains(e.Receipt, "unsigned")
			case e.BackupID == edited:
				refused = e.Authentic && e.Outcome == "fail" // our own record saying it was refused
			}
		}
		if !pass || !forged || !refused {
			t.Errorf("pass %v, forged record flagged %v, refusal recorded %v:\n%s", pass, forged, refused, r.stdout)
		}
		for _, format := range []string{"md", "html"} {
			r := run(t, "report", "orders", "-c", reader, "--format", format)
			if r.code != 0 || !strings.Contains(r.stdout, id) || !strings.Contains(r.stdout, "NOT authentic") {
				t.Errorf("--format %s: exit %d:\n%s%s", format, r.code, r.stdout, r.stderr)
			}
		}
	})
	t.Run("adopt signs backups from before signing, never edited ones", func(t *testing.T) {
		r := run(t, "adopt", "orders", "-c", cfg, "--backup", before)
		if r.code != 0 || strings.Count(r.stdout, "adopted (was unsigned)") != 2 {
			t.Fatalf("adopt: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
		}
		r = run(t, "adopt", "orders", "-c", cfg, "--backup", edited, "--destination", "local")
		if r.code == 0 || !strings.Contains(r.stderr, "refusing to adopt: not authentic: bad signature") {
			t.Fatalf("adopt of an edited backup: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
		}
		for _, b := range decode[listDoc](t, run(t, "list", "-c", reader, "--json").stdout).Backups {
			if want := map[string]string{before: "committed", edited: "untrusted"}[b.ID]; want != "" && b.State != want {
				t.Errorf("%s on %s: %s, want %s", b.ID, b.Destination, b.State, want)
			}
		}
	})
	t.Run("a host without the key cannot write", func(t *testing.T) {
		r := run(t, "backup", "-c", reader, "--json")
		if r.code != ExitUsage || !strings.Contains(r.stderr, "signing.key_file is not set") {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
	})
	t.Run("the redactor masks the private key", func(t *testing.T) {
		c, err := config.Load(cfg)
		if err != nil {
			t.Fatal(err)
		}
		pem, _ := os.ReadFile(keyFile)
		msg := redact.New(c.Secrets()...).String("oops: " + string(pem))
		for line := range strings.Lines(string(pem)) {
			if !strings.HasPrefix(line, "-----") && strings.Contains(msg, strings.TrimSpace(line)) {
				t.Errorf("redacted: %s", msg)
			}
		}
	})
	// The private key is in its file and nowhere else.
	for _, d := range []destination.Destination{local, offsite} {
		objs, err := d.List(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if bytes.Contains(readObject(t, d, o.Key), []byte(private)) {
				t.Errorf("%s holds the private signing key", o.Key)
			}
		}
	}
}

// Without signing too: a backup dated in the future, or copied under a newer
// id with its old times, is listed but never the latest (issue 16).
func TestTimeTravelIsNotLatest(t *testing.T) {
	ctx := context.Background()
	dsn := appDB(t)
	cfg := e2eConfig(t, dsn, testenv.S3(t).SecretKey)
	id := backupCommitted(t, cfg)
	local := rawDestination(t, cfg, "local")
	retime := func(start time.Time) func(string, []byte) []byte {
		return func(newID string, data []byte) []byte {
			var m catalog.Manifest
			if err := json.Unmarshal(data, &m); err != nil {
				t.Fatal(err)
			}
			m.ID = newID
			if !start.IsZero() {
				m.Start, m.End = start, start.Add(time.Minute)
			}
			out, _ := json.Marshal(m)
			return out
		}
	}
	future := time.Date(2099, 12, 31, 23, 59, 59, 0, time.UTC)
	planted := plantCopy(t, local, id, future, retime(future))
	replayed := plantCopy(t, local, id, time.Now().Add(2*time.Minute), retime(time.Time{})) // old times, newer id

	states := map[string]string{}
	for _, b := range decode[listDoc](t, runCLI(t, ctx, "list", "-c", cfg, "--destination", "local", "--json").stdout).Backups {
		states[b.ID] = b.State
	}
	if states[planted] != "committed" || states[replayed] != "committed" {
		t.Fatalf("list: %v", states) // shown, for a person to see
	}
	into := testenv.NewPostgresDB(t)
	r := runCLI(t, ctx, "restore", "orders", "-c", cfg, "--from", "local", "--to", into, "--dry-run", "--json")
	var res struct {
		BackupID string `json:"backup_id"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); r.code != 0 || err != nil || res.BackupID != id {
		t.Fatalf("restore --dry-run: exit %d, picked %q, want %s:\n%s%s", r.code, res.BackupID, id, r.stdout, r.stderr)
	}
	// Named, it can still be restored: a person decided.
	r = runCLI(t, ctx, "restore", "orders", "-c", cfg, "--from", "local", "--backup", planted, "--to", into, "--dry-run", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &res); r.code != 0 || err != nil || res.BackupID != planted {
		t.Fatalf("restore --backup %s --dry-run: exit %d:\n%s%s", planted, r.code, r.stdout, r.stderr)
	}
}
