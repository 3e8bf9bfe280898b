package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/backproof/backproof/engine/mongodb/checkquery"
)

const testFile = "/cfg/bp.yaml"

// y trims the leading newline of a raw string so that line 1 is the first
// line written after the backquote.
func y(s string) string { return strings.TrimPrefix(s, "\n") }

// okTail is the smallest valid set of destinations and targets.
const okTail = `destinations:
  local: {type: local, path: /b}
targets:
  db:
    engine: postgres
    dsn: postgres://x
    destinations: [local]
`

func envFunc(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

func mustParse(t *testing.T, in string, env map[string]string) *Config {
	t.Helper()
	c, err := Parse([]byte(in), testFile, envFunc(env))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

func problemLines(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		t.Fatal("Parse succeeded, want an error")
	}
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("error is %T, want *config.Error: %v", err, err)
	}
	lines := strings.Split(cerr.Error(), "\n")
	if len(lines) != len(cerr.Problems) {
		t.Fatalf("Error() has %d lines for %d problems", len(lines), len(cerr.Problems))
	}
	return lines
}

func TestParseErrors(t *testing.T) {
	age1, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	recipient := age1.Recipient().String()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("good.key", age1.String()+"\n")
	write("bad.key", "# comment\nAGE-SECRET-KEY-1NOTAKEY\n")
	write("empty", "\n")

	tests := []struct {
		name string
		in   string
		env  map[string]string
		want []string
	}{
		// Syntax and structure.
		{
			name: "yaml syntax",
			in:   "listen: x\ntargets:\n  db: {engine: postgres\n",
			want: []string{"/cfg/bp.yaml:3: invalid YAML: did not find expected ',' or '}'"},
		},
		{
			name: "yaml bad indentation",
			in:   "log:\n  level: info\n format: text\n",
			want: []string{"/cfg/bp.yaml:3: invalid YAML: did not find expected key"},
		},
		{
			name: "yaml scanner error",
			in:   "listen: x\nlog: @x\n",
			want: []string{"/cfg/bp.yaml:2: invalid YAML: found character that cannot start any token"},
		},
		{
			name: "unquoted operators",
			in:   okTail + "    verify:\n      checks:\n        - {name: a, query: q, expect: != 0}\n",
			want: []string{`/cfg/bp.yaml:10: targets.db.verify.checks[0].expect: a value starting with "!" must be quoted, e.g. expect: "!= 0"`},
		},
		{
			name: "unquoted folded indicator",
			in:   okTail + "    verify:\n      checks:\n        - name: a\n          query: q\n          expect: > 0\n",
			want: []string{`/cfg/bp.yaml:12: invalid YAML: did not find expected comment or line break (a value starting with ">" or "|" must be quoted, e.g. expect: "> 0")`},
		},
		{
			name: "unknown alias",
			in:   "listen: *nope\n",
			want: []string{"/cfg/bp.yaml: invalid YAML: unknown anchor 'nope' referenced"},
		},
		{
			name: "two documents",
			in:   okTail + "---\nlisten: x\n",
			want: []string{"/cfg/bp.yaml:9: more than one YAML document; the config must be a single document"},
		},
		{
			name: "not a mapping",
			in:   "- a\n- b\n",
			want: []string{"/cfg/bp.yaml:1: expected a mapping, got a list"},
		},
		{
			name: "empty file",
			in:   "",
			want: []string{
				"/cfg/bp.yaml: destinations: at least one destination is required",
				"/cfg/bp.yaml: targets: at least one target is required",
			},
		},
		{
			name: "unknown top-level key",
			in:   "listn: 127.0.0.1:1\n" + okTail,
			want: []string{`/cfg/bp.yaml:1: listn: unknown key (did you mean "listen"?)`},
		},
		{
			name: "unknown nested keys",
			in: y(`
log: {level: info, colour: true}
destinations:
  local: {type: local, path: /b}
targets:
  db:
    engine: postgres
    dns: postgres://x
    dsn: postgres://x
    destinations: [local]
    verify:
      checks:
        - name: a
          query: q
          expect: "> 0"
          timeout: 1s
`),
			want: []string{
				"/cfg/bp.yaml:1: log.colour: unknown key",
				`/cfg/bp.yaml:7: targets.db.dns: unknown key (did you mean "dsn"?)`,
				"/cfg/bp.yaml:15: targets.db.verify.checks[0].timeout: unknown key",
			},
		},
		{
			name: "_file only for secrets",
			in: y(`
destinations:
  local: {type: local, path_file: /b}
targets:
  db: {engine: postgres, dsn: x, destinations: [local], engine_file: /e}
`),
			want: []string{
				"/cfg/bp.yaml:2: destinations.local.path_file: unknown key: only dsn, access_key_id, secret_access_key and session_token can be read from a file",
				"/cfg/bp.yaml:2: destinations.local.path: required for local destinations",
				"/cfg/bp.yaml:4: targets.db.engine_file: unknown key: only dsn, access_key_id, secret_access_key and session_token can be read from a file",
			},
		},
		{
			name: "duplicate keys",
			in: y(`
listen: 127.0.0.1:1
destinations:
  local: {type: local, path: /b}
  local: {type: local, path: /c}
targets:
  db:
    engine: postgres
    dsn: postgres://x
    destinations: [local]
    engine: mysql
listen: 127.0.0.1:2
`),
			want: []string{
				"/cfg/bp.yaml:4: destinations.local: duplicate key (first defined on line 3)",
				"/cfg/bp.yaml:10: targets.db.engine: duplicate key (first defined on line 7)",
				"/cfg/bp.yaml:11: listen: duplicate key (first defined on line 1)",
			},
		},
		{
			name: "wrong types",
			in: y(`
log: info
sandbox:
  images: [postgres]
  memory: lots
  cpus: two
  timeout: 5 minutes
destinations:
  local: {type: local, path: [/b]}
  s3:
    type: s3
    bucket: b
    path_style: maybe
    concurrency: 2.5
    part_size: {a: 1}
targets:
  db:
    engine: postgres
    dsn: [postgres://x]
    destinations: local
    retention: {keep_last: seven}
`),
			want: []string{
				"/cfg/bp.yaml:1: log: expected a mapping, got a string",
				"/cfg/bp.yaml:3: sandbox.images: expected a mapping, got a list",
				`/cfg/bp.yaml:4: sandbox.memory: invalid size "lots": want a number with an optional unit, e.g. 512MiB`,
				`/cfg/bp.yaml:5: sandbox.cpus: expected a number, got "two"`,
				`/cfg/bp.yaml:6: sandbox.timeout: invalid duration "5 minutes" (want e.g. 90s, 30m, 26h, 14d)`,
				"/cfg/bp.yaml:8: destinations.local.path: expected a string, got a list",
				`/cfg/bp.yaml:12: destinations.s3.path_style: expected true or false, got "maybe"`,
				`/cfg/bp.yaml:13: destinations.s3.concurrency: expected an integer, got "2.5"`,
				"/cfg/bp.yaml:14: destinations.s3.part_size: expected a size, got a mapping",
				"/cfg/bp.yaml:18: targets.db.dsn: expected a string, got a list",
				"/cfg/bp.yaml:19: targets.db.destinations: expected a list, got a string",
				`/cfg/bp.yaml:20: targets.db.retention.keep_last: expected an integer, got "seven"`,
			},
		},
		{
			name: "non-string key",
			in:   "? [a, b]\n: 1\n" + okTail,
			want: []string{"/cfg/bp.yaml:1: keys must be strings, got a list"},
		},

		// Environment expansion.
		{
			name: "unset variables",
			in: y(`
listen: ${LISTEN}
destinations:
  local: {type: local, path: "${DIR}/${SUB}"}
targets:
  db:
    engine: postgres
    dsn: ${DSN}
    destinations: [local]
`),
			env: map[string]string{"DIR": "/b"},
			want: []string{
				"/cfg/bp.yaml:1: listen: environment variable LISTEN is not set (use ${LISTEN:-default} for a default)",
				"/cfg/bp.yaml:3: destinations.local.path: environment variable SUB is not set (use ${SUB:-default} for a default)",
				"/cfg/bp.yaml:7: targets.db.dsn: environment variable DSN is not set (use ${DSN:-default} for a default)",
			},
		},
		{
			name: "bad references",
			in:   "listen: ${1X}\nlog: {level: \"${LEVEL\"}\n" + okTail,
			want: []string{
				"/cfg/bp.yaml:1: listen: invalid variable reference ${1X...}: want ${NAME} or ${NAME:-default}",
				"/cfg/bp.yaml:2: log.level: unterminated ${ (write $$ for a literal $)",
			},
		},
		{
			name: "expanded value has the wrong type",
			in:   "sandbox: {cpus: \"${CPUS}\"}\n" + okTail,
			env:  map[string]string{"CPUS": "many"},
			want: []string{`/cfg/bp.yaml:1: sandbox.cpus: expected a number, got "many"`},
		},

		// Secret files.
		{
			name: "dsn and dsn_file",
			in: y(`
destinations:
  local: {type: local, path: /b}
targets:
  db:
    engine: postgres
    dsn: postgres://x
    dsn_file: @DIR@/good.key
    destinations: [local]
`),
			want: []string{"/cfg/bp.yaml:7: targets.db.dsn_file: dsn and dsn_file are mutually exclusive"},
		},
		{
			name: "unreadable secret file",
			in: y(`
destinations:
  local: {type: local, path: /b}
targets:
  db:
    engine: postgres
    dsn_file: @DIR@/missing
    destinations: [local]
`),
			want: []string{"/cfg/bp.yaml:6: targets.db.dsn_file: open @DIR@/missing: no such file or directory"},
		},
		{
			name: "empty secret file",
			in: y(`
destinations:
  local: {type: local, path: /b}
targets:
  db:
    engine: postgres
    dsn_file: @DIR@/empty
    destinations: [local]
`),
			want: []string{"/cfg/bp.yaml:6: targets.db.dsn: required (set dsn or dsn_file)"},
		},

		// Top level.
		{
			name: "listen and log",
			in:   "listen: localhost\nlog: {level: verbose, format: xml}\n" + okTail,
			want: []string{
				"/cfg/bp.yaml:1: listen: want host:port, e.g. 127.0.0.1:9847",
				`/cfg/bp.yaml:2: log.level: unknown level "verbose" (want debug, info, warn or error)`,
				`/cfg/bp.yaml:2: log.format: unknown format "xml" (want text or json)`,
			},
		},
		{
			name: "listen port",
			in:   "listen: 127.0.0.1:99999\n" + okTail,
			want: []string{`/cfg/bp.yaml:1: listen: invalid port "99999"`},
		},
		{
			name: "sandbox",
			in: y(`
sandbox:
  images: {postgres: "", oracle: "oracle:23"}
  memory: 0
  cpus: -1
  timeout: -5m
`) + okTail,
			want: []string{
				"/cfg/bp.yaml:2: sandbox.images.oracle: unknown engine (want postgres, mongodb, redis, valkey, mysql or mariadb)",
				"/cfg/bp.yaml:2: sandbox.images.postgres: empty image",
				"/cfg/bp.yaml:3: sandbox.memory: must be positive",
				"/cfg/bp.yaml:4: sandbox.cpus: must be positive",
				"/cfg/bp.yaml:5: sandbox.timeout: must be positive",
			},
		},
		{
			name: "sandbox driver",
			in:   "sandbox: {driver: podman}\n" + okTail,
			want: []string{`/cfg/bp.yaml:1: sandbox.driver: unknown driver "podman" (want docker or kubernetes)`},
		},
		{
			name: "kubernetes sandbox",
			in: y(`
sandbox:
  driver: kubernetes
  kubernetes: {access: tunnel, disk: -1GiB, client_labels: {"a b": x}}
`) + okTail,
			want: []string{
				`/cfg/bp.yaml:3: sandbox.kubernetes.access: unknown access "tunnel" (want auto, pod-ip or port-forward)`,
				`/cfg/bp.yaml:3: sandbox.kubernetes.client_labels["a b"]: not a valid Kubernetes label`,
				`/cfg/bp.yaml:3: sandbox.kubernetes.disk: invalid size "-1GiB": want a number with an optional unit, e.g. 512MiB`,
				"/cfg/bp.yaml:3: sandbox.kubernetes.namespace: required with sandbox.driver: kubernetes",
			},
		},
		{
			name: "kubernetes namespace",
			in:   "sandbox: {driver: kubernetes, kubernetes: {namespace: Not_A_Name}}\n" + okTail,
			want: []string{`/cfg/bp.yaml:1: sandbox.kubernetes.namespace: invalid namespace "Not_A_Name": lower-case letters, digits and '-'`},
		},

		// Encryption.
		{
			name: "encryption without recipients",
			in:   "encryption: {identity_file: @DIR@/good.key}\n" + okTail,
			want: []string{"/cfg/bp.yaml:1: encryption.recipients: at least one recipient is required"},
		},
		{
			name: "bad recipients",
			in: y(`
encryption:
  recipients:
    - age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq
    - AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ
    - @RECIPIENT@
    - @RECIPIENT@
`) + okTail,
			want: []string{
				`/cfg/bp.yaml:3: encryption.recipients[0]: not a valid age X25519 recipient: "age1qqqqqqqq"...`,
				"/cfg/bp.yaml:4: encryption.recipients[1]: this is an age secret key; recipients take public keys (age1...)",
				`/cfg/bp.yaml:6: encryption.recipients[3]: duplicate recipient "@RECIPIENT12@"...`,
			},
		},
		{
			name: "identity file",
			in: y(`
encryption:
  recipients: [@RECIPIENT@]
  identity_file: @DIR@/bad.key
`) + okTail,
			want: []string{"/cfg/bp.yaml:3: encryption.identity_file: @DIR@/bad.key: line 2 is not a valid age identity"},
		},
		{
			name: "missing identity file",
			in:   "encryption: {recipients: [@RECIPIENT@], identity_file: /nonexistent/key}\n" + okTail,
			want: []string{"/cfg/bp.yaml:1: encryption.identity_file: open /nonexistent/key: no such file or directory"},
		},

		// Destinations.
		{
			name: "no destinations or targets",
			in:   "destinations: {}\ntargets: {}\n",
			want: []string{
				"/cfg/bp.yaml:1: destinations: at least one destination is required",
				"/cfg/bp.yaml:2: targets: at least one target is required",
			},
		},
		{
			name: "destination types",
			in: y(`
destinations:
  a: {path: /b}
  b: {type: nfs}
  c:
  "d e": {type: local, path: /b}
  -x: {type: local, path: /b}
targets:
  db: {engine: postgres, dsn: x, destinations: [a]}
`),
			want: []string{
				"/cfg/bp.yaml:2: destinations.a.type: required (local or s3)",
				`/cfg/bp.yaml:3: destinations.b.type: unknown type "nfs" (want local or s3)`,
				"/cfg/bp.yaml:4: destinations.c.type: required (local or s3)",
				`/cfg/bp.yaml:5: destinations["d e"]: invalid name "d e": use letters, digits, '.', '_' and '-', starting with a letter or digit`,
				`/cfg/bp.yaml:6: destinations.-x: invalid name "-x": use letters, digits, '.', '_' and '-', starting with a letter or digit`,
			},
		},
		{
			name: "local destination",
			in: y(`
destinations:
  a: {type: local}
  b:
    type: local
    path: ~/backups
    bucket: x
    region: eu-west-1
    part_size: 0
    access_key_id_file: @DIR@/good.key
targets:
  db: {engine: postgres, dsn: x, destinations: [a, b]}
`),
			want: []string{
				"/cfg/bp.yaml:2: destinations.a.path: required for local destinations",
				"/cfg/bp.yaml:5: destinations.b.path: ~ is not expanded; use an absolute path or ${HOME}",
				"/cfg/bp.yaml:6: destinations.b.bucket: does not apply to local destinations",
				"/cfg/bp.yaml:7: destinations.b.region: does not apply to local destinations",
				"/cfg/bp.yaml:8: destinations.b.part_size: does not apply to local destinations",
				"/cfg/bp.yaml:9: destinations.b.access_key_id: does not apply to local destinations",
			},
		},
		{
			name: "s3 destination",
			in: y(`
destinations:
  a:
    type: s3
    path: /b
  b:
    type: s3
    bucket: backups/prod
    prefix: a//b
    endpoint: minio:9000
    access_key_id: AKID
    part_size: 1MiB
    concurrency: 65
  c:
    type: s3
    bucket: c
    endpoint: https://user:pw@s3.example.com
    secret_access_key: s
    session_token: t
    part_size: 6GiB
  d: {type: s3, bucket: d, endpoint: "https://s3.example.com/bucket"}
  e: {type: s3, bucket: e, concurrency: -1}
targets:
  db: {engine: postgres, dsn: x, destinations: [a]}
`),
			want: []string{
				"/cfg/bp.yaml:2: destinations.a.bucket: required for s3 destinations",
				"/cfg/bp.yaml:4: destinations.a.path: does not apply to s3 destinations",
				`/cfg/bp.yaml:7: destinations.b.bucket: invalid bucket name "backups/prod" (put key prefixes in prefix)`,
				"/cfg/bp.yaml:8: destinations.b.prefix: must not contain empty, . or .. segments",
				"/cfg/bp.yaml:9: destinations.b.endpoint: want an http:// or https:// URL, e.g. https://s3.example.com:9000",
				"/cfg/bp.yaml:5: destinations.b.secret_access_key: required when access_key_id is set",
				"/cfg/bp.yaml:11: destinations.b.part_size: must be between 5MiB and 5GiB, got 1MiB",
				"/cfg/bp.yaml:12: destinations.b.concurrency: must be between 1 and 64, got 65",
				"/cfg/bp.yaml:16: destinations.c.endpoint: must not contain credentials; use access_key_id and secret_access_key",
				"/cfg/bp.yaml:13: destinations.c.access_key_id: required when secret_access_key is set",
				"/cfg/bp.yaml:18: destinations.c.session_token: requires access_key_id and secret_access_key",
				"/cfg/bp.yaml:19: destinations.c.part_size: must be between 5MiB and 5GiB, got 6GiB",
				"/cfg/bp.yaml:20: destinations.d.endpoint: want scheme, host and port only, e.g. https://s3.example.com:9000",
				"/cfg/bp.yaml:21: destinations.e.concurrency: must be between 1 and 64, got -1",
			},
		},

		// Targets.
		{
			name: "target basics",
			in: y(`
destinations:
  local: {type: local, path: /b}
  offsite: {type: local, path: /c}
targets:
  a:
    schedule: "61 * * * *"
  b:
    engine: postgresql
    dsn: x
    schedule: "CRON_TZ=Mars/Olympus 0 2 * * *"
    destinations: [local, ofsite, local, ""]
  c/d: {engine: redis, dsn: x, destinations: [local], schedule: "0 0 30 2 *"}
`),
			want: []string{
				"/cfg/bp.yaml:5: targets.a.engine: required (postgres, mongodb, redis, valkey, mysql or mariadb)",
				"/cfg/bp.yaml:5: targets.a.dsn: required (set dsn or dsn_file)",
				"/cfg/bp.yaml:5: targets.a.destinations: at least one destination is required",
				`/cfg/bp.yaml:6: targets.a.schedule: invalid schedule "61 * * * *": end of range (61) above maximum (59): 61`,
				`/cfg/bp.yaml:8: targets.b.engine: unknown engine "postgresql" (want postgres, mongodb, redis, valkey, mysql or mariadb)`,
				`/cfg/bp.yaml:10: targets.b.schedule: invalid schedule "CRON_TZ=Mars/Olympus 0 2 * * *": provided bad location Mars/Olympus: unknown time zone Mars/Olympus`,
				`/cfg/bp.yaml:11: targets.b.destinations[1]: unknown destination "ofsite" (defined: local, offsite)`,
				`/cfg/bp.yaml:11: targets.b.destinations[2]: duplicate destination "local"`,
				"/cfg/bp.yaml:11: targets.b.destinations[3]: empty destination name",
				`/cfg/bp.yaml:12: targets["c/d"]: invalid name "c/d": use letters, digits, '.', '_' and '-', starting with a letter or digit`,
				`/cfg/bp.yaml:12: targets["c/d"].schedule: invalid schedule "0 0 30 2 *": never fires`,
			},
		},
		{
			name: "retention",
			in: y(`
destinations:
  local: {type: local, path: /b}
targets:
  a:
    engine: postgres
    dsn: x
    destinations: [local]
    retention: {keep_last: -1, keep_within: -1h}
  b:
    engine: postgres
    dsn: x
    destinations: [local]
    retention:
      keep_daily: 0
  c:
    engine: postgres
    dsn: x
    destinations: [local]
    retention: {keep_daily: nope}
`),
			want: []string{
				"/cfg/bp.yaml:8: targets.a.retention.keep_last: must not be negative",
				"/cfg/bp.yaml:8: targets.a.retention.keep_within: must not be negative",
				"/cfg/bp.yaml:8: targets.a.retention: keeps nothing: set at least one keep_* rule, or remove retention to keep every backup",
				"/cfg/bp.yaml:13: targets.b.retention: keeps nothing: set at least one keep_* rule, or remove retention to keep every backup",
				`/cfg/bp.yaml:19: targets.c.retention.keep_daily: expected an integer, got "nope"`,
			},
		},
		{
			name: "verify",
			in: y(`
destinations:
  local: {type: local, path: /b}
targets:
  db:
    engine: postgres
    dsn: x
    destinations: [local]
    verify:
      schedule: "@sometimes"
      checks:
        - query: SELECT 1
          expect: "true"
        - name: Rows
          query: SELECT 1
          expect: "~ 3"
        - name: rows
          query: " "
          expect: "> 0"
          max_age: 1h
        - name: rows
          query: SELECT 1
        - name: fresh
          query: SELECT now()
          max_age: -1h
        - name: fresh2
          query: SELECT now()
          max_age: 0s
      pick: newest
      window: -1h
      amcheck: sometimes
`),
			want: []string{
				`/cfg/bp.yaml:9: targets.db.verify.schedule: invalid schedule "@sometimes": unrecognized descriptor: @sometimes`,
				"/cfg/bp.yaml:11: targets.db.verify.checks[0].name: required",
				`/cfg/bp.yaml:13: targets.db.verify.checks[1].name: invalid name "Rows": use lower-case letters, digits, '.', '_' and '-', starting with a letter or digit`,
				`/cfg/bp.yaml:15: targets.db.verify.checks[1].expect: invalid expect "~ 3": want "true" or an operator (= != > >= < <=) followed by a number`,
				"/cfg/bp.yaml:17: targets.db.verify.checks[2].query: required",
				"/cfg/bp.yaml:16: targets.db.verify.checks[2]: set either expect or max_age, not both",
				`/cfg/bp.yaml:20: targets.db.verify.checks[3].name: duplicate check name "rows" (also checks[2])`,
				"/cfg/bp.yaml:20: targets.db.verify.checks[3]: one of expect or max_age is required",
				"/cfg/bp.yaml:24: targets.db.verify.checks[4].max_age: must be positive",
				"/cfg/bp.yaml:27: targets.db.verify.checks[5].max_age: must be positive",
				`/cfg/bp.yaml:28: targets.db.verify.pick: unknown pick "newest" (want latest or random)`,
				"/cfg/bp.yaml:29: targets.db.verify.window: must be positive",
				`/cfg/bp.yaml:30: targets.db.verify.amcheck: expected true or false, got "sometimes"`,
			},
		},
		{
			name: "mongodb check queries",
			in: y(`
destinations:
  local: {type: local, path: /b}
targets:
  shop:
    engine: mongodb
    dsn: mongodb://127.0.0.1/shop
    destinations: [local]
    verify:
      checks:
        - name: sql
          query: SELECT count(*) FROM orders
          expect: "> 0"
        - name: writes
          query: '{"aggregate": "orders", "pipeline": [{"$out": "copy"}]}'
          expect: "> 0"
        - name: paid
          query: '{"count": "orders", "query": {"status": "paid"}}'
          expect: "> 0"
        - name: fresh
          query: '{"find": "orders", "sort": {"at": -1}, "limit": 1, "projection": {"_id": 0, "at": 1}}'
          max_age: 26h
`),
			want: []string{
				`/cfg/bp.yaml:11: targets.shop.verify.checks[0].query: not an Extended JSON command document such as {"count": "orders"}: invalid JSON input (check "sql")`,
				"/cfg/bp.yaml:14: targets.shop.verify.checks[1].query: aggregate: stage $out writes; checks only read (check \"writes\")",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := strings.NewReplacer("@DIR@", dir, "@RECIPIENT@", recipient).Replace(tt.in)
			_, err := ParseWith([]byte(in), testFile, envFunc(tt.env), mongoQueries)
			got := problemLines(t, err)
			want := make([]string, len(tt.want))
			for i, w := range tt.want {
				want[i] = strings.NewReplacer("@DIR@", dir, "@RECIPIENT12@", recipient[:12]).Replace(w)
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// mongoQueries validates MongoDB check queries as the mongodb engine
// registers it: config reports what the engine says, at the query's line.
var mongoQueries = Options{CheckQuery: func(engine, query string) error {
	if engine != EngineMongoDB {
		return nil
	}
	_, err := checkquery.Parse(query)
	return err
}}

func TestProblemsSortedByLine(t *testing.T) {
	in := "targets: {}\nlisten: x\nlog: {level: loud}\n"
	_, err := Parse([]byte(in), testFile, nil)
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("got %v", err)
	}
	for i := 1; i < len(cerr.Problems); i++ {
		if cerr.Problems[i-1].Line > cerr.Problems[i].Line {
			t.Fatalf("problems not sorted by line:\n%v", err)
		}
	}
}

func TestDefaults(t *testing.T) {
	c := mustParse(t, y(`
encryption:
destinations:
  local: {type: local, path: /b}
  s3: {type: s3, bucket: b, prefix: /prod/db/}
targets:
  db:
    engine: postgres
    dsn: postgres://x
    destinations: [local, s3]
    retention:
    verify: ~
`), nil)
	if c.File != testFile {
		t.Errorf("File = %q", c.File)
	}
	if c.Listen != DefaultListen || c.Log.Level != "info" || c.Log.Format != "" {
		t.Errorf("listen/log = %q %+v", c.Listen, c.Log)
	}
	if c.Encryption != nil {
		t.Errorf("Encryption = %+v, want nil", c.Encryption)
	}
	wantImages := map[string]string{"postgres": "postgres:{major}", "mongodb": "mongo:7", "redis": "redis:{major}", "valkey": "valkey/valkey:{major}", "mysql": "mysql:{version}", "mariadb": "mariadb:{version}"}
	if !reflect.DeepEqual(c.Sandbox.Images, wantImages) {
		t.Errorf("images = %v", c.Sandbox.Images)
	}
	if c.Sandbox.Memory != GiB || c.Sandbox.CPUs != 1 || c.Sandbox.Timeout != 30*time.Minute {
		t.Errorf("sandbox = %+v", c.Sandbox)
	}
	s3 := c.Destinations["s3"]
	if s3.Name != "s3" || s3.Region != "us-east-1" || s3.PartSize != 5*MiB || s3.Concurrency != 2 || s3.Prefix != "prod/db" {
		t.Errorf("s3 = %+v", s3)
	}
	if l := c.Destinations["local"]; l.Region != "" || l.PartSize != 0 || l.Concurrency != 0 {
		t.Errorf("local got s3 defaults: %+v", l)
	}
	db := c.Targets["db"]
	if db.Name != "db" || db.Retention != nil || db.Verify != nil || db.Schedule != "" {
		t.Errorf("target = %+v", db)
	}
	if got := c.TargetNames(); !slices.Equal(got, []string{"db"}) {
		t.Errorf("TargetNames = %v", got)
	}
	if got := c.DestinationNames(); !slices.Equal(got, []string{"local", "s3"}) {
		t.Errorf("DestinationNames = %v", got)
	}
}

func TestOverrides(t *testing.T) {
	c := mustParse(t, y(`
listen: ":9000"
log: {level: debug, format: json}
sandbox:
  images: {postgres: "registry.local/postgres:{major}"}
  memory: 512MiB
  cpus: 2.5
  timeout: 1h30m
destinations:
  s3:
    type: s3
    bucket: b
    region: eu-central-1
    endpoint: https://s3.example.com:9000/
    path_style: true
    access_key_id: id
    secret_access_key: secret
    session_token: token
    part_size: 64MB
    concurrency: 8
targets:
  db:
    engine: mongodb
    dsn: mongodb://x
    schedule: "TZ=Europe/Berlin @daily"
    destinations: [s3]
    retention: {keep_within: 14d, keep_yearly: 1}
    verify:
      schedule: "0 30 3 * * *"
      checks:
        - {name: n, query: '{"count": "c"}', expect: "true"}
        - {name: m, query: '{"count": "c"}', max_age: 1d12h}
`), nil)
	if c.Listen != ":9000" || c.Log != (Log{Level: "debug", Format: "json"}) {
		t.Errorf("listen/log = %q %+v", c.Listen, c.Log)
	}
	if c.Sandbox.Images["postgres"] != "registry.local/postgres:{major}" || c.Sandbox.Images["redis"] != "redis:{major}" {
		t.Errorf("images = %v (want postgres overridden, the rest default)", c.Sandbox.Images)
	}
	if c.Sandbox.Memory != 512*MiB || c.Sandbox.CPUs != 2.5 || c.Sandbox.Timeout != 90*time.Minute {
		t.Errorf("sandbox = %+v", c.Sandbox)
	}
	s3 := c.Destinations["s3"]
	if s3.Region != "eu-central-1" || !s3.PathStyle || s3.PartSize != 64*MB || s3.Concurrency != 8 ||
		s3.AccessKeyID.Reveal() != "id" || s3.SecretAccessKey.Reveal() != "secret" || s3.SessionToken.Reveal() != "token" {
		t.Errorf("s3 = %#v", s3)
	}
	db := c.Targets["db"]
	if db.Retention.KeepWithin != 14*24*time.Hour || db.Retention.KeepYearly != 1 {
		t.Errorf("retention = %+v", db.Retention)
	}
	if got := db.Verify.Checks[1].MaxAge; got != 36*time.Hour {
		t.Errorf("max_age = %v", got)
	}
	if v := db.Verify; v.Pick != VerifyPickLatest || v.Window != DefaultVerifyWindow || v.Amcheck != nil {
		t.Errorf("verify defaults: pick %q window %v amcheck %v", v.Pick, v.Window, v.Amcheck)
	}
	c = mustParse(t, y(`
destinations:
  local: {type: local, path: /b}
targets:
  db:
    engine: postgres
    dsn: x
    destinations: [local]
    verify: {pick: random, window: 3d, amcheck: false}
`), nil)
	if v := c.Targets["db"].Verify; v.Pick != VerifyPickRandom || v.Window != 72*time.Hour || v.Amcheck == nil || *v.Amcheck {
		t.Errorf("verify: pick %q window %v amcheck %v", v.Pick, v.Window, v.Amcheck)
	}
}

func TestRelativePaths(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dsn"), []byte("postgres://from-file\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "bp.yaml")
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "age.key"), []byte("# created: now\n"+id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	in := y(`
encryption:
  recipients: [` + id.Recipient().String() + `]
  identity_file: age.key
destinations:
  local: {type: local, path: backups/../data}
  abs: {type: local, path: /srv//backups/}
targets:
  db: {engine: postgres, dsn_file: dsn, destinations: [local, abs]}
`)
	if err := os.WriteFile(cfgFile, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Encryption.IdentityFile, filepath.Join(dir, "age.key"); got != want {
		t.Errorf("identity_file = %q, want %q", got, want)
	}
	if got, want := c.Destinations["local"].Path, filepath.Join(dir, "data"); got != want {
		t.Errorf("local path = %q, want %q", got, want)
	}
	if got := c.Destinations["abs"].Path; got != "/srv/backups" {
		t.Errorf("abs path = %q", got)
	}
	if got := c.Targets["db"].DSN.Reveal(); got != "postgres://from-file" {
		t.Errorf("dsn = %q", got)
	}
}

func TestEnvExpansion(t *testing.T) {
	env := map[string]string{"HOST": "db.local", "EMPTY": "", "CPUS": "3", "DOLLAR": "$"}
	tests := []struct {
		value, want string
	}{
		{"${HOST}", "db.local"},
		{"x-${HOST}-${HOST}", "x-db.local-db.local"},
		{"${UNSET:-fallback}", "fallback"},
		{"${EMPTY:-fallback}", "fallback"},
		{"${HOST:-fallback}", "db.local"},
		{"${UNSET:-}", ""},
		{"${EMPTY}", ""},
		{"${UNSET:-a:-b}", "a:-b"},
		{"$$", "$"},
		{"$$$$", "$$"},
		{"$${HOST}", "${HOST}"},
		{"$HOST", "$HOST"},
		{"a$", "a$"},
		{"$ {HOST}", "$ {HOST}"},
		{"${DOLLAR}{HOST}", "${HOST}"}, // no re-expansion
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			in := "targets:\n  db:\n    engine: postgres\n    destinations: [local]\n    dsn: '" + tt.value + "'\n" +
				"destinations: {local: {type: local, path: /b}}\n"
			if tt.want == "" {
				in = strings.Replace(in, "    dsn:", "    dsn: x\n    schedule:", 1)
			}
			c := mustParse(t, in, env)
			got := c.Targets["db"].DSN.Reveal()
			if tt.want == "" {
				got = c.Targets["db"].Schedule
			}
			if got != tt.want {
				t.Errorf("%q expanded to %q, want %q", tt.value, got, tt.want)
			}
		})
	}

	t.Run("typed values", func(t *testing.T) {
		in := "sandbox:\n  cpus: ${CPUS:-2}\n  memory: ${MEM:-2GiB}\n  timeout: ${TIMEOUT:-}\n" + okTail
		c := mustParse(t, in, env)
		if c.Sandbox.CPUs != 3 || c.Sandbox.Memory != 2*GiB || c.Sandbox.Timeout != DefaultSandboxTimeout {
			t.Errorf("sandbox = %+v", c.Sandbox)
		}
	})
	t.Run("keys are not expanded", func(t *testing.T) {
		_, err := Parse([]byte("${HOST}: x\n"+okTail), testFile, envFunc(env))
		got := problemLines(t, err)
		if want := `/cfg/bp.yaml:1: ["${HOST}"]: unknown key`; !slices.Contains(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
	})
}

func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"dsn":    "postgres://u:p@h/db\n",
		"id":     "AKID\r\n",
		"secret": "s3cr3t",
		"token":  "tok\n\n\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	in := strings.ReplaceAll(y(`
destinations:
  s3:
    type: s3
    bucket: b
    access_key_id_file: @DIR@/id
    secret_access_key_file: ${SECRETS}/secret
    session_token_file: @DIR@/token
targets:
  db: {engine: postgres, dsn_file: @DIR@/dsn, destinations: [s3]}
`), "@DIR@", dir)
	c := mustParse(t, in, map[string]string{"SECRETS": dir})
	s3 := c.Destinations["s3"]
	for _, tt := range []struct{ got, want string }{
		{c.Targets["db"].DSN.Reveal(), "postgres://u:p@h/db"},
		{s3.AccessKeyID.Reveal(), "AKID"},
		{s3.SecretAccessKey.Reveal(), "s3cr3t"},
		{s3.SessionToken.Reveal(), "tok"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestMergeKeys(t *testing.T) {
	c := mustParse(t, y(`
destinations:
  local: {type: local, path: /b}
targets:
  a: &base
    engine: postgres
    dsn: postgres://a
    destinations: [local]
    retention: &keep {keep_last: 3}
  b:
    <<: *base
    dsn: postgres://b
    retention: *keep
`), nil)
	b := c.Targets["b"]
	if b.Engine != "postgres" || b.DSN.Reveal() != "postgres://b" || b.Retention.KeepLast != 3 || b.Name != "b" {
		t.Errorf("b = %+v %+v", b, b.Retention)
	}
}

func TestAliasBomb(t *testing.T) {
	// Merge keys expand without regard to the target type, so they are the
	// way to make a small document expand exponentially.
	var b strings.Builder
	b.WriteString("a: &a {engine: postgres}\n")
	prev := "a"
	for _, n := range []string{"b", "c", "d", "e", "f", "g"} {
		b.WriteString(n + ": &" + n + " {<<: [")
		for i := range 10 {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*" + prev)
		}
		b.WriteString("]}\n")
		prev = n
	}
	in := b.String() + "targets:\n  db:\n    <<: *g\n"
	_, err := Parse([]byte(in), testFile, nil)
	if err == nil || !strings.Contains(err.Error(), "expands to more than") {
		t.Fatalf("got %v", err)
	}
}

func TestLoadExample(t *testing.T) {
	t.Setenv("S3_ACCESS_KEY_ID", "minioadmin")
	t.Setenv("S3_SECRET_ACCESS_KEY", "minioadmin-secret")
	t.Setenv("ORDERS_DSN", "postgres://backproof:pw@127.0.0.1:5432/orders")
	c, err := Load("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	o := c.Targets["orders"]
	if o == nil || o.Engine != "postgres" || !slices.Equal(o.Destinations, []string{"local", "offsite"}) ||
		o.Retention == nil || o.Verify == nil || len(o.Verify.Checks) != 2 {
		t.Fatalf("orders = %+v", o)
	}
	if off := c.Destinations["offsite"]; off.Type != "s3" || off.SecretAccessKey.Reveal() != "minioadmin-secret" || !off.PathStyle {
		t.Errorf("offsite = %+v", off)
	}
	for _, ch := range o.Verify.Checks {
		if ch.Expect != "" {
			if _, err := ParseExpect(ch.Expect); err != nil {
				t.Error(err)
			}
		}
	}
}

// The commented-out MongoDB target of the example is valid once uncommented.
func TestLoadExampleMongoDB(t *testing.T) {
	data, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	in := false
	for _, line := range strings.Split(string(data), "\n") {
		if line == "  # shop:" {
			in = true
		}
		if in && !strings.HasPrefix(line, "  # ") {
			in = false
		}
		if in {
			line = "  " + strings.TrimPrefix(line, "  # ")
		}
		out = append(out, line)
	}
	p := filepath.Join(t.TempDir(), "example.yaml")
	if err := os.WriteFile(p, []byte(strings.Join(out, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("S3_ACCESS_KEY_ID", "minioadmin")
	t.Setenv("S3_SECRET_ACCESS_KEY", "minioadmin-secret")
	t.Setenv("ORDERS_DSN", "postgres://backproof:pw@127.0.0.1:5432/orders")
	t.Setenv("SHOP_DSN", "mongodb://backproof:pw@127.0.0.1:27017/shop?authSource=admin")
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Targets["shop"]
	if s == nil || s.Engine != EngineMongoDB || s.Verify == nil || len(s.Verify.Checks) != 3 || s.Verify.Checks[2].MaxAge != 26*time.Hour {
		t.Fatalf("shop = %+v", s)
	}
}

func TestLoadMissingFile(t *testing.T) {
	name := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := Load(name)
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("got %T %v, want *config.Error", err, err)
	}
	if want := name + ": cannot read config: no such file or directory"; err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
}

func TestValidateProgrammatic(t *testing.T) {
	c := &Config{
		Listen: DefaultListen,
		Log:    Log{Level: "info", Format: "text"},
		Sandbox: Sandbox{
			Images: map[string]string{"postgres": "postgres:16"}, Memory: GiB, CPUs: 1, Timeout: time.Minute,
		},
		Destinations: map[string]*Destination{
			"local": {Name: "local", Type: DestinationLocal, Path: "/b", Concurrency: 2},
		},
		Targets: map[string]*Target{
			"db": {Name: "db", Engine: EnginePostgres, DSN: NewSecret("x"), Destinations: []string{"local"}},
		},
	}
	err := c.Validate()
	want := "destinations.local.concurrency: does not apply to local destinations"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
	c.Destinations["local"].Concurrency = 0
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestProblemString(t *testing.T) {
	for _, tt := range []struct {
		p    Problem
		want string
	}{
		{Problem{File: "f.yaml", Line: 3, Path: "a.b", Msg: "bad"}, "f.yaml:3: a.b: bad"},
		{Problem{File: "f.yaml", Path: "a", Msg: "bad"}, "f.yaml: a: bad"},
		{Problem{File: "f.yaml", Line: 1, Msg: "bad"}, "f.yaml:1: bad"},
		{Problem{Line: 2, Path: "a", Msg: "bad"}, "line 2: a: bad"},
		{Problem{Msg: "bad"}, "bad"},
	} {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

func TestPaths(t *testing.T) {
	for _, tt := range []struct{ parent, key, path, back string }{
		{"", "targets", "targets", ""},
		{"targets", "orders", "targets.orders", "targets"},
		{"targets", "a b", `targets["a b"]`, "targets"},
		{"targets", `a".[b`, `targets["a\".[b"]`, "targets"},
		{`targets["a.b"]`, "dsn", `targets["a.b"].dsn`, `targets["a.b"]`},
	} {
		got := childPath(tt.parent, tt.key)
		if got != tt.path {
			t.Errorf("childPath(%q, %q) = %q, want %q", tt.parent, tt.key, got, tt.path)
		}
		if back := parentPath(got); back != tt.back {
			t.Errorf("parentPath(%q) = %q, want %q", got, back, tt.back)
		}
	}
	if got := parentPath("a.b[3]"); got != "a.b" {
		t.Errorf("parentPath = %q", got)
	}
}
