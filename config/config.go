// Package config loads and validates the backproof configuration file.
//
// Loading is strict: unknown keys, duplicate keys and values of the wrong type
// are errors. ${VAR} and ${VAR:-default} in values expand from the
// environment, and the secret keys (dsn, access_key_id, secret_access_key,
// session_token) may be read from a file with <key>_file. Every problem is
// reported with its file, line and key path in a single *Error.
package config

import (
	"bytes"
	"cmp"
	"errors"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Defaults.
const (
	DefaultListen         = "127.0.0.1:9847"
	DefaultLogLevel       = "info"
	DefaultMaxBackups     = 2 // concurrent backups in the daemon
	DefaultMaxVerifies    = 1 // concurrent verifications in the daemon
	DefaultSandboxMemory  = 1 * GiB
	DefaultSandboxCPUs    = 1.0
	DefaultSandboxTimeout = 30 * time.Minute
	DefaultSandboxDisk    = 10 * GiB
	DefaultVerifyWindow   = 7 * 24 * time.Hour
	DefaultReplicaTTL     = time.Minute
	MinReplicaTTL         = 3 * time.Second // replicas write a heartbeat every third of it
	DefaultS3Region       = "us-east-1"
	DefaultS3PartSize     = 5 * MiB
	DefaultS3Concurrency  = 2
	DefaultStallTimeout   = 5 * time.Minute
)

// Engines.
const (
	EnginePostgres = "postgres"
	EngineMongoDB  = "mongodb"
	EngineRedis    = "redis"
	EngineValkey   = "valkey" // Valkey, Redis's fork: the redis engine's code, its own images and RDB versions
	EngineMySQL    = "mysql"
	EngineMariaDB  = "mariadb"
)

// Destination types.
const (
	DestinationLocal = "local"
	DestinationS3    = "s3"
)

// Config is the whole configuration file.
type Config struct {
	File         string                  `yaml:"-"` // path it was loaded from
	Listen       string                  `yaml:"listen"`
	Log          Log                     `yaml:"log"`
	Encryption   *Encryption             `yaml:"encryption"` // nil: artifacts are stored unencrypted
	Signing      *Signing                `yaml:"signing"`    // nil: manifests and records are not signed
	Replicas     *Replicas               `yaml:"replicas"`   // nil: this daemon runs every target
	Sandbox      Sandbox                 `yaml:"sandbox"`
	Concurrency  Concurrency             `yaml:"concurrency"`
	Destinations map[string]*Destination `yaml:"destinations"`
	Targets      map[string]*Target      `yaml:"targets"`

	// lines maps key paths to the line they were defined on.
	lines map[string]int
	opts  Options
}

// Replicas lets several daemons on the same config share the targets: they
// meet on a destination, and each target's schedules run on one live replica.
type Replicas struct {
	Destination string        `yaml:"destination"` // where the replicas meet
	ID          string        `yaml:"id"`          // this replica's name; "" in the file: the host name
	TTL         time.Duration `yaml:"ttl"`         // a replica silent this long is gone; 0 in the file: DefaultReplicaTTL
}

// Log configures the process logger.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // text | json; "" in the file: json in the daemon, text otherwise
}

// Concurrency limits how many jobs the daemon runs at once, over all targets.
type Concurrency struct {
	Backups       int `yaml:"backups"`       // 0 in the file: DefaultMaxBackups
	Verifications int `yaml:"verifications"` // 0 in the file: DefaultMaxVerifies
}

// MaxBackups is the limit on concurrent backups.
func (c Concurrency) MaxBackups() int { return cmp.Or(c.Backups, DefaultMaxBackups) }

// MaxVerifications is the limit on concurrent verifications.
func (c Concurrency) MaxVerifications() int { return cmp.Or(c.Verifications, DefaultMaxVerifies) }

// Encryption configures age public-key encryption of every artifact.
type Encryption struct {
	Recipients   []string `yaml:"recipients"`    // age X25519 public keys; writers need only these
	IdentityFile string   `yaml:"identity_file"` // age identity file; verify and restore need it
	// Identity is the content of IdentityFile, read and checked by
	// validation so that what was checked is what is used.
	Identity Secret `yaml:"-"`
}

// Signing configures Ed25519 signatures on every manifest and verification
// record, and which signatures readers accept.
type Signing struct {
	KeyFile     string   `yaml:"key_file"`     // private key of hosts that write (backup, verify)
	TrustedKeys []string `yaml:"trusted_keys"` // public keys whose signatures are accepted
	// Key is the content of KeyFile, read and checked by validation.
	Key Secret `yaml:"-"`
}

// Sandbox configures the throwaway containers verification restores into.
type Sandbox struct {
	Driver     string            `yaml:"driver"` // docker | kubernetes
	Images     map[string]string `yaml:"images"` // engine -> image; "{major}" and "{version}" are replaced by the server's major and x.y.z version
	Memory     ByteSize          `yaml:"memory"`
	CPUs       float64           `yaml:"cpus"`
	Timeout    time.Duration     `yaml:"timeout"`
	Kubernetes Kubernetes        `yaml:"kubernetes"`
}

// Sandbox drivers.
const (
	DriverDocker     = "docker"
	DriverKubernetes = "kubernetes"
)

// Kubernetes configures sandboxes as Pods (sandbox.driver: kubernetes).
type Kubernetes struct {
	Namespace    string            `yaml:"namespace"`     // where sandbox Pods run; required with the driver
	Kubeconfig   string            `yaml:"kubeconfig"`    // "": in-cluster, else $KUBECONFIG or ~/.kube/config
	Access       string            `yaml:"access"`        // auto | pod-ip | port-forward
	Disk         ByteSize          `yaml:"disk"`          // size limit of a sandbox's data volume
	ClientLabels map[string]string `yaml:"client_labels"` // backproof's Pods, the only ones a sandbox admits
}

// Destination is a place backups are written to.
type Destination struct {
	Name string `yaml:"-"`    // key in the destinations map
	Type string `yaml:"type"` // local | s3

	// local
	Path string `yaml:"path"` // absolute after loading

	// s3
	Bucket          string      `yaml:"bucket"`
	Prefix          string      `yaml:"prefix"`   // without leading or trailing "/"
	Region          string      `yaml:"region"`   // "" in the file: DefaultS3Region
	Endpoint        string      `yaml:"endpoint"` // http(s) URL; empty for AWS
	PathStyle       bool        `yaml:"path_style"`
	AccessKeyID     Secret      `yaml:"access_key_id"` // empty with SecretAccessKey: the AWS default credential chain
	SecretAccessKey Secret      `yaml:"secret_access_key"`
	SessionToken    Secret      `yaml:"session_token"`
	PartSize        ByteSize    `yaml:"part_size"`   // multipart part size; 0 in the file: DefaultS3PartSize
	Concurrency     int         `yaml:"concurrency"` // parts in flight; 0 in the file: DefaultS3Concurrency
	ObjectLock      *ObjectLock `yaml:"object_lock"` // nil: objects are not locked

	// StallTimeout fails the destination when it takes no bytes for this
	// long; 0 in the file: DefaultStallTimeout.
	StallTimeout time.Duration `yaml:"stall_timeout"`
}

// ObjectLock is an S3 Object Lock retention written with every object.
type ObjectLock struct {
	Mode string `yaml:"mode"` // governance | compliance
	Days int    `yaml:"days"` // each object stays locked this long after it is written
}

// Target is one database to back up.
type Target struct {
	Name         string     `yaml:"-"`      // key in the targets map
	Engine       string     `yaml:"engine"` // postgres | mongodb | redis | mysql | mariadb
	DSN          Secret     `yaml:"dsn"`
	Schedule     string     `yaml:"schedule"`     // cron spec; empty: manual backups only
	Destinations []string   `yaml:"destinations"` // names of destinations
	Retention    *Retention `yaml:"retention"`    // nil: keep everything
	Verify       *Verify    `yaml:"verify"`
}

// Retention says which backups prune keeps. A backup is kept if any rule
// selects it.
type Retention struct {
	KeepLast    int           `yaml:"keep_last"`
	KeepHourly  int           `yaml:"keep_hourly"`
	KeepDaily   int           `yaml:"keep_daily"`
	KeepWeekly  int           `yaml:"keep_weekly"`
	KeepMonthly int           `yaml:"keep_monthly"`
	KeepYearly  int           `yaml:"keep_yearly"`
	KeepWithin  time.Duration `yaml:"keep_within"`
}

// Verify configures restore verification of a target's backups.
type Verify struct {
	Schedule string        `yaml:"schedule"` // cron spec; empty: on demand only
	Pick     string        `yaml:"pick"`     // latest | random; "" in the file: VerifyPickLatest
	Window   time.Duration `yaml:"window"`   // pick random: among backups created within this long; 0 in the file: DefaultVerifyWindow
	Amcheck  *bool         `yaml:"amcheck"`  // nil: run amcheck when the sandbox has it
	Checks   []Check       `yaml:"checks"`
	// KeyTolerance (redis): how many keys per database the restored copy
	// may differ by from the count recorded at dump time, as a live server
	// changes while it is dumped. Zero: exactly equal.
	KeyTolerance Tolerance `yaml:"key_tolerance"`
	// Continuity compares each backup with the last good one; nil: the
	// engine's defaults.
	Continuity *Continuity `yaml:"continuity"`
}

// How a scheduled verification picks the backup it restores.
const (
	VerifyPickLatest = "latest"
	VerifyPickRandom = "random"
)

// Check is one integrity query run against a restored backup. Exactly one of
// Expect and MaxAge is set.
type Check struct {
	Name   string        `yaml:"name"`
	Query  string        `yaml:"query"`
	Expect string        `yaml:"expect"`  // see ParseExpect
	MaxAge time.Duration `yaml:"max_age"` // the query returns a timestamp no older than this, relative to the backup time
}

// maxSecretFile bounds how much of a <key>_file is read.
const maxSecretFile = 64 << 10

// Options are the rules a config is validated with that config itself does
// not know: the engines' (cli/wiring.go passes them).
type Options struct {
	// CheckQuery validates a check query of a target of engine; nil: any
	// non-empty query.
	CheckQuery func(engine, query string) error
}

// Load reads and parses the config file at path, expanding ${VAR} from the
// process environment.
func Load(path string) (*Config, error) { return LoadWith(path, Options{}) }

// LoadWith is Load with engine rules.
func LoadWith(path string, o Options) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		// A config that cannot be read is a config error, not an operational one.
		msg := err.Error()
		if pe, ok := errors.AsType[*fs.PathError](err); ok {
			msg = pe.Err.Error()
		}
		return nil, &Error{Problems: []Problem{{File: path, Msg: "cannot read config: " + msg}}}
	}
	return ParseWith(data, path, os.LookupEnv, o)
}

// Parse parses and validates a config. filename is used in error messages and
// to resolve relative paths; lookupEnv expands ${VAR} (nil: no variables are
// set). On failure the error is an *Error listing every problem.
func Parse(data []byte, filename string, lookupEnv func(string) (string, bool)) (*Config, error) {
	return ParseWith(data, filename, lookupEnv, Options{})
}

// ParseWith is Parse with engine rules.
func ParseWith(data []byte, filename string, lookupEnv func(string) (string, bool), o Options) (*Config, error) {
	if lookupEnv == nil {
		lookupEnv = func(string) (string, bool) { return "", false }
	}
	dir, err := filepath.Abs(filepath.Dir(filename))
	if err != nil {
		dir = filepath.Dir(filename)
	}

	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil && !errors.Is(err, io.EOF) {
		return nil, &Error{Problems: []Problem{syntaxProblem(filename, err)}}
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		line := extra.Line
		if len(extra.Content) > 0 {
			line = extra.Content[0].Line
		}
		return nil, &Error{Problems: []Problem{{File: filename, Line: line, Msg: "more than one YAML document; the config must be a single document"}}}
	case !errors.Is(err, io.EOF):
		return nil, &Error{Problems: []Problem{syntaxProblem(filename, err)}}
	}

	c := defaults()
	c.File = filename
	c.opts = o
	d := &decoder{
		file:      filename,
		dir:       dir,
		lookupEnv: lookupEnv,
		lines:     map[string]int{},
		failed:    map[string]bool{},
	}
	if len(root.Content) > 0 {
		d.decode(root.Content[0], reflect.ValueOf(c).Elem(), "")
	}
	c.lines = d.lines
	c.finish(dir)

	problems := d.problems
	for _, p := range c.validate() {
		if !d.moot(p) {
			problems = append(problems, p.Problem)
		}
	}
	if len(problems) > 0 {
		sortProblems(problems)
		return nil, &Error{Problems: problems}
	}
	return c, nil
}

// syntaxProblem turns a yaml.v3 parse error ("yaml: line 3: ...") into a
// Problem. yaml.v3 syntax errors do not quote document content.
func syntaxProblem(filename string, err error) Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, m, ok := strings.Cut(rest, ": "); ok {
			if l, err := strconv.Atoi(n); err == nil {
				line, msg = l, m
			}
		}
	}
	// yaml.v3 reports parser (as opposed to scanner) errors with a 0-based
	// line: that of the enclosing construct, or of the problem itself.
	switch msg {
	case "did not find expected <stream-start>",
		"did not find expected <document start>",
		"did not find expected node content",
		"did not find expected '-' indicator",
		"did not find expected key",
		"did not find expected ',' or ']'",
		"did not find expected ',' or '}'",
		"found undefined tag handle",
		"found duplicate %YAML directive",
		"found duplicate %TAG directive",
		"found incompatible YAML document":
		if line > 0 {
			line++
		}
	case "did not find expected comment or line break",
		"found an indentation indicator equal to 0":
		msg += ` (a value starting with ">" or "|" must be quoted, e.g. expect: "> 0")`
	}
	return Problem{File: filename, Line: line, Msg: "invalid YAML: " + msg}
}

// defaults returns a Config holding every top-level default; decoding
// overwrites what the file sets.
func defaults() *Config {
	return &Config{
		Listen: DefaultListen,
		Log:    Log{Level: DefaultLogLevel},

		Sandbox: Sandbox{
			Driver: DriverDocker,
			Kubernetes: Kubernetes{
				Access:       "auto",
				Disk:         DefaultSandboxDisk,
				ClientLabels: map[string]string{"app.kubernetes.io/name": "backproof"},
			},
			Images: map[string]string{
				EnginePostgres: "postgres:{major}",
				EngineMongoDB:  "mongo:7",
				EngineRedis:    "redis:{major}",
				EngineValkey:   "valkey/valkey:{major}",
				EngineMySQL:    "mysql:{version}",
				EngineMariaDB:  "mariadb:{version}",
			},
			Memory:  DefaultSandboxMemory,
			CPUs:    DefaultSandboxCPUs,
			Timeout: DefaultSandboxTimeout,
		},
	}
}

// finish fills in what depends on decoded values: names, per-type
// destination defaults, normalized prefixes and paths resolved against dir.
func (c *Config) finish(dir string) {
	for name, d := range c.Destinations {
		d.Name = name
		if d.StallTimeout == 0 {
			d.StallTimeout = DefaultStallTimeout
		}
		switch d.Type {
		case DestinationLocal:
			if d.Path != "" && !strings.HasPrefix(d.Path, "~") {
				d.Path = resolve(dir, d.Path)
			}
		case DestinationS3:
			d.Prefix = strings.Trim(d.Prefix, "/")
			if d.Region == "" {
				d.Region = DefaultS3Region
			}
			if d.PartSize == 0 {
				d.PartSize = DefaultS3PartSize
			}
			if d.Concurrency == 0 {
				d.Concurrency = DefaultS3Concurrency
			}
		}
	}
	for name, t := range c.Targets {
		t.Name = name
		if v := t.Verify; v != nil {
			if v.Pick == "" {
				v.Pick = VerifyPickLatest
			}
			if v.Window == 0 {
				v.Window = DefaultVerifyWindow
			}
		}
	}
	if e := c.Encryption; e != nil && e.IdentityFile != "" && !strings.HasPrefix(e.IdentityFile, "~") {
		e.IdentityFile = resolve(dir, e.IdentityFile)
	}
	if r := c.Replicas; r != nil {
		if r.ID == "" {
			r.ID, _ = os.Hostname()
		}
		if r.TTL == 0 {
			r.TTL = DefaultReplicaTTL
		}
	}
	if s := c.Signing; s != nil && s.KeyFile != "" && !strings.HasPrefix(s.KeyFile, "~") {
		s.KeyFile = resolve(dir, s.KeyFile)
	}
}

// resolve makes a relative path absolute against dir.
func resolve(dir, path string) string {
	if filepath.IsAbs(path) {
		return filepath.Clean(path)
	}
	return filepath.Join(dir, path)
}

// DestinationNames returns the names of all destinations, sorted.
func (c *Config) DestinationNames() []string { return sortedKeys(c.Destinations) }

// TargetNames returns the names of all targets, sorted.
func (c *Config) TargetNames() []string { return sortedKeys(c.Targets) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Secrets returns every non-empty secret in the config, for a log redactor:
// DSNs, S3 keys and session tokens, age identities, plus the password part
// of each DSN on its own, since drivers may print a DSN piecewise. The list has no
// duplicates and is ordered longest first, so that a replacer applied in
// order never leaves part of a longer secret behind.
func (c *Config) Secrets() []string {
	var out []string
	add := func(s string) {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	for _, name := range c.DestinationNames() {
		d := c.Destinations[name]
		if d == nil {
			continue
		}
		add(d.AccessKeyID.Reveal())
		add(d.SecretAccessKey.Reveal())
		add(d.SessionToken.Reveal())
	}
	for _, name := range c.TargetNames() {
		t := c.Targets[name]
		if t == nil {
			continue
		}
		add(t.DSN.Reveal())
		for _, p := range DSNPasswords(t.DSN.Reveal()) {
			add(p)
		}
	}
	if e := c.Encryption; e != nil {
		for line := range strings.Lines(e.Identity.Reveal()) {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				add(line)
			}
		}
	}
	if s := c.Signing; s != nil {
		// The PEM body lines, each on its own: a printed key is masked
		// however it is cut.
		for line := range strings.Lines(s.Key.Reveal()) {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "-----") {
				add(line)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	return out
}

// DSNPasswords extracts the password from the DSN forms the engines use, as
// written and unescaped, for masking: URLs (scheme://user:pass@host),
// go-sql-driver/mysql (user:pass@tcp(host)/db) and libpq key=value strings
// (password=... or password='...').
func DSNPasswords(dsn string) []string {
	var out []string
	add := func(p string) {
		if p == "" {
			return
		}
		out = append(out, p)
		if u, err := url.PathUnescape(p); err == nil && u != p {
			out = append(out, u)
		}
	}
	userinfo := func(s string) {
		if at := strings.LastIndex(s, "@"); at >= 0 {
			if _, pass, ok := strings.Cut(s[:at], ":"); ok {
				add(pass)
			}
		}
	}
	if _, rest, ok := strings.Cut(dsn, "://"); ok {
		if i := strings.IndexAny(rest, "/?#"); i >= 0 {
			rest = rest[:i]
		}
		userinfo(rest)
	} else if at := strings.LastIndex(dsn, "@"); at >= 0 && !strings.ContainsAny(dsn[:at], " \t=") {
		head := dsn
		if i := strings.LastIndex(dsn, "/"); i > at {
			head = dsn[:i]
		}
		userinfo(head)
	}
	// key=value forms: libpq "password=x" and URL query "?password=x".
	for off := 0; ; {
		i := strings.Index(dsn[off:], "password")
		if i < 0 {
			break
		}
		i += off
		off = i + len("password")
		var sep byte
		if i > 0 {
			sep = dsn[i-1]
			if !strings.ContainsRune(" \t?&", rune(sep)) {
				continue
			}
		}
		v := strings.TrimLeft(dsn[off:], " \t")
		v, ok := strings.CutPrefix(v, "=")
		if !ok {
			continue
		}
		v = strings.TrimLeft(v, " \t")
		if q, ok := strings.CutPrefix(v, "'"); ok {
			var b strings.Builder
			for i := 0; i < len(q); i++ {
				if q[i] == '\\' && i+1 < len(q) {
					i++
				} else if q[i] == '\'' {
					break
				}
				b.WriteByte(q[i])
			}
			add(b.String())
			continue
		}
		end := " \t"
		if sep == '?' || sep == '&' {
			end += "&#"
		}
		if i := strings.IndexAny(v, end); i >= 0 {
			v = v[:i]
		}
		add(v)
	}
	return out
}
