package config

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/backproof/backproof/crypt"
	"github.com/backproof/backproof/sign"
)

// Limits for S3 destinations.
const (
	MinS3PartSize    = 5 * MiB
	MaxS3PartSize    = 5 * GiB
	MaxS3Concurrency = 64
	// MaxObjectLockDays is 100 years, what S3 allows.
	MaxObjectLockDays = 36500
)

// Validate checks c and returns an *Error listing every problem, or nil.
// Load and Parse call it; call it again after changing a Config in code.
// Problems carry line numbers only for a Config that came from Parse.
func (c *Config) Validate() error {
	var ps []Problem
	for _, p := range c.validate() {
		ps = append(ps, p.Problem)
	}
	if len(ps) == 0 {
		return nil
	}
	sortProblems(ps)
	return &Error{Problems: ps}
}

func (c *Config) validate() []problem {
	v := &validator{c: c}
	v.listen()
	v.log()
	v.concurrency()
	v.encryption()
	v.signing()
	v.sandbox()
	v.destinations()
	v.targets()
	v.replicas()
	return v.problems
}

// problem is a validation Problem plus whether it is a summary of the
// block's children (such as "retention keeps nothing"), which is moot when
// one of those children could not be decoded.
type problem struct {
	Problem
	summary bool
}

type validator struct {
	c        *Config
	problems []problem
}

func (v *validator) addf(path, format string, args ...any) {
	v.add(false, path, format, args...)
}

// summaryf adds a problem about a block that follows from its children.
func (v *validator) summaryf(path, format string, args ...any) {
	v.add(true, path, format, args...)
}

func (v *validator) add(summary bool, path, format string, args ...any) {
	v.problems = append(v.problems, problem{
		Problem: Problem{
			File: v.c.File,
			Line: v.c.lineOf(path),
			Path: path,
			Msg:  fmt.Sprintf(format, args...),
		},
		summary: summary,
	})
}

// lineOf returns the line path was defined on, or that of its closest
// defined ancestor: a missing key is reported where its parent is.
func (c *Config) lineOf(path string) int {
	for p := path; p != ""; p = parentPath(p) {
		if l, ok := c.lines[p]; ok {
			return l
		}
	}
	return 0
}

// has reports whether the file set the key at path.
func (c *Config) has(path string) bool {
	_, ok := c.lines[path]
	return ok
}

func (v *validator) listen() {
	host, port, err := net.SplitHostPort(v.c.Listen)
	if err != nil || strings.ContainsAny(host, " /") {
		v.addf("listen", "want host:port, e.g. 127.0.0.1:9847")
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.addf("listen", "invalid port %s", quoteValue(port))
	}
}

func (v *validator) log() {
	if l := v.c.Log.Level; !slices.Contains([]string{"debug", "info", "warn", "error"}, l) {
		v.addf("log.level", "unknown level %s (want debug, info, warn or error)", quoteValue(l))
	}
	if f := v.c.Log.Format; !slices.Contains([]string{"", "text", "json"}, f) {
		v.addf("log.format", "unknown format %s (want text or json)", quoteValue(f))
	}
}

func (v *validator) concurrency() {
	if n := v.c.Concurrency.Backups; n < 0 {
		v.addf("concurrency.backups", "must be at least 1, not %d", n)
	}
	if n := v.c.Concurrency.Verifications; n < 0 {
		v.addf("concurrency.verifications", "must be at least 1, not %d", n)
	}
}

func (v *validator) encryption() {
	e := v.c.Encryption
	if e == nil {
		return
	}
	if len(e.Recipients) == 0 {
		v.addf("encryption.recipients", "at least one recipient is required")
	}
	seen := map[string]bool{}
	for i, r := range e.Recipients {
		p := indexPath("encryption.recipients", i)
		r = strings.TrimSpace(r)
		switch {
		case strings.HasPrefix(strings.ToUpper(r), "AGE-SECRET-KEY-"):
			// Name nothing of it: this is a private key in the wrong place.
			v.addf(p, "this is an age secret key; recipients take public keys (age1...)")
		case r == "":
			v.addf(p, "empty recipient")
		default:
			if _, err := age.ParseX25519Recipient(r); err != nil {
				// age's error quotes the whole key; report only its start.
				v.addf(p, "not a valid age X25519 recipient: %s", keyPrefix(r))
			} else if seen[r] {
				v.addf(p, "duplicate recipient %s", keyPrefix(r))
			}
			seen[r] = true
		}
	}
	e.Identity = Secret{}
	if e.IdentityFile != "" {
		id, err := readIdentityFile(e.IdentityFile)
		if err != nil {
			v.addf("encryption.identity_file", "%v", err)
		}
		e.Identity = id
	}
}

// keyPrefix quotes the first 12 characters of a key, enough to find it.
func keyPrefix(k string) string {
	const n = 12
	if len(k) > n {
		return strconv.Quote(k[:n]) + "..."
	}
	return strconv.Quote(k)
}

// readIdentityFile reads and checks an age identity file. Its errors never
// include the file's content.
func readIdentityFile(name string) (Secret, error) {
	if strings.HasPrefix(name, "~") {
		return Secret{}, fmt.Errorf("%s: ~ is not expanded; use an absolute path or ${HOME}", name)
	}
	f, err := os.Open(name)
	if err != nil {
		return Secret{}, err
	}
	defer f.Close()
	// One byte more than crypt reads, so that it sees an oversized file.
	data, err := io.ReadAll(io.LimitReader(f, crypt.MaxIdentityFile+1))
	if err != nil {
		return Secret{}, fmt.Errorf("read %s: %w", name, err)
	}
	if _, err := crypt.ParseIdentities(bytes.NewReader(data)); err != nil {
		return Secret{}, fmt.Errorf("%s: %v", name, err)
	}
	return NewSecret(string(data)), nil
}

func (v *validator) replicas() {
	r := v.c.Replicas
	if r == nil {
		return
	}
	switch {
	case r.Destination == "":
		v.addf("replicas.destination", "required: the destination where the replicas meet")
	case v.c.Destinations[r.Destination] == nil:
		v.addf("replicas.destination", "unknown destination %s", quoteValue(r.Destination))
	case v.c.Destinations[r.Destination].ObjectLock != nil:
		v.addf("replicas.destination", "destination %s has object_lock, which would keep every heartbeat for days: pick one without", quoteValue(r.Destination))
	}
	if !isName(r.ID) {
		v.addf("replicas.id", "invalid replica id %s: use letters, digits, '.', '_' and '-', starting with a letter or digit", quoteValue(r.ID))
	}
	if r.TTL < MinReplicaTTL {
		v.addf("replicas.ttl", "must be at least %s, got %s", MinReplicaTTL, r.TTL)
	}
}

func (v *validator) signing() {
	s := v.c.Signing
	if s == nil {
		return
	}
	if len(s.TrustedKeys) == 0 {
		v.addf("signing.trusted_keys", "at least one trusted public key is required (keygen --signing prints it)")
	}
	seen := map[string]bool{}
	for i, k := range s.TrustedKeys {
		p := indexPath("signing.trusted_keys", i)
		pub, err := sign.ParsePublicKey(k)
		switch {
		case err != nil:
			// Quote nothing of it: it may be a private key in the wrong place.
			v.addf(p, "%v", err)
		case seen[sign.FormatPublicKey(pub)]:
			v.addf(p, "duplicate key %s", keyPrefix(strings.TrimSpace(k)))
		default:
			seen[sign.FormatPublicKey(pub)] = true
		}
	}
	s.Key = Secret{}
	if s.KeyFile == "" {
		return // a host that only reads
	}
	key, signer, err := readSigningKey(s.KeyFile)
	if err != nil {
		v.addf("signing.key_file", "%v", err)
		return
	}
	s.Key = key
	if len(seen) > 0 && !seen[signer.PublicKey()] {
		v.addf("signing.key_file", "its public key %s is not in signing.trusted_keys: every backup this host writes would be refused", signer.PublicKey())
	}
}

// readSigningKey reads and checks a signing key file. Its errors never
// include the file's content.
func readSigningKey(name string) (Secret, *sign.Signer, error) {
	if strings.HasPrefix(name, "~") {
		return Secret{}, nil, fmt.Errorf("%s: ~ is not expanded; use an absolute path or ${HOME}", name)
	}
	f, err := os.Open(name)
	if err != nil {
		return Secret{}, nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, sign.MaxKeyFile+1))
	if err != nil {
		return Secret{}, nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(data) > sign.MaxKeyFile {
		return Secret{}, nil, fmt.Errorf("%s: larger than %d bytes, not a signing key", name, sign.MaxKeyFile)
	}
	signer, err := sign.ParsePrivateKey(data)
	if err != nil {
		return Secret{}, nil, fmt.Errorf("%s: %v", name, err)
	}
	return NewSecret(string(data)), signer, nil
}

func (v *validator) sandbox() {
	s := v.c.Sandbox
	for _, engine := range sortedKeys(s.Images) {
		p := childPath("sandbox.images", engine)
		if !isEngine(engine) {
			v.addf(p, "unknown engine (want %s)", enginesList())
		} else if strings.TrimSpace(s.Images[engine]) == "" {
			v.addf(p, "empty image")
		}
	}
	if s.Memory <= 0 {
		v.addf("sandbox.memory", "must be positive")
	}
	if s.CPUs <= 0 {
		v.addf("sandbox.cpus", "must be positive")
	}
	if s.Timeout <= 0 {
		v.addf("sandbox.timeout", "must be positive")
	}
	switch s.Driver {
	case "", DriverDocker:
	case DriverKubernetes:
		if s.Kubernetes.Namespace == "" {
			v.addf("sandbox.kubernetes.namespace", "required with sandbox.driver: kubernetes")
		}
	default:
		v.addf("sandbox.driver", "unknown driver %s (want docker or kubernetes)", quoteValue(s.Driver))
	}
	k := s.Kubernetes
	if k.Namespace != "" && len(validation.IsDNS1123Label(k.Namespace)) > 0 {
		v.addf("sandbox.kubernetes.namespace", "invalid namespace %s: lower-case letters, digits and '-'", quoteValue(k.Namespace))
	}
	switch k.Access {
	case "", "auto", "pod-ip", "port-forward":
	default:
		v.addf("sandbox.kubernetes.access", "unknown access %s (want auto, pod-ip or port-forward)", quoteValue(k.Access))
	}
	if k.Disk < 0 {
		v.addf("sandbox.kubernetes.disk", "must not be negative")
	}
	for _, key := range sortedKeys(k.ClientLabels) {
		if len(validation.IsQualifiedName(key)) > 0 || len(validation.IsValidLabelValue(k.ClientLabels[key])) > 0 {
			v.addf(childPath("sandbox.kubernetes.client_labels", key), "not a valid Kubernetes label")
		}
	}
}

// name checks a destination or target name, which may become a path segment.
func (v *validator) name(p, name string) {
	if !isName(name) {
		v.addf(p, "invalid name %s: use letters, digits, '.', '_' and '-', starting with a letter or digit", quoteValue(name))
	}
}

func (v *validator) destinations() {
	if len(v.c.Destinations) == 0 {
		v.addf("destinations", "at least one destination is required")
	}
	for _, name := range sortedKeys(v.c.Destinations) {
		p := childPath("destinations", name)
		d := v.c.Destinations[name]
		v.name(p, name)
		if d == nil {
			v.addf(p, "empty destination")
			continue
		}
		switch d.Type {
		case DestinationLocal:
			v.local(p, d)
		case DestinationS3:
			v.s3(p, d)
		case "":
			v.addf(p+".type", "required (local or s3)")
		default:
			v.addf(p+".type", "unknown type %s (want local or s3)", quoteValue(d.Type))
		}
	}
}

func (v *validator) local(p string, d *Destination) {
	switch {
	case d.Path == "":
		v.addf(p+".path", "required for local destinations")
	case strings.HasPrefix(d.Path, "~"):
		v.addf(p+".path", "~ is not expanded; use an absolute path or ${HOME}")
	}
	v.stall(p, d)
	v.notApplicable(p, "local", map[string]bool{
		"bucket":            d.Bucket != "",
		"prefix":            d.Prefix != "",
		"region":            d.Region != "",
		"endpoint":          d.Endpoint != "",
		"path_style":        d.PathStyle,
		"access_key_id":     !d.AccessKeyID.IsZero(),
		"secret_access_key": !d.SecretAccessKey.IsZero(),
		"session_token":     !d.SessionToken.IsZero(),
		"part_size":         d.PartSize != 0,
		"concurrency":       d.Concurrency != 0,
		"object_lock":       d.ObjectLock != nil,
	})
}

func (v *validator) s3(p string, d *Destination) {
	v.stall(p, d)
	v.notApplicable(p, "s3", map[string]bool{"path": d.Path != ""})
	switch {
	case d.Bucket == "":
		v.addf(p+".bucket", "required for s3 destinations")
	case strings.ContainsAny(d.Bucket, "/ \t"):
		v.addf(p+".bucket", "invalid bucket name %s (put key prefixes in prefix)", quoteValue(d.Bucket))
	}
	for _, seg := range strings.Split(d.Prefix, "/") {
		if d.Prefix != "" && (seg == "" || seg == "." || seg == "..") {
			v.addf(p+".prefix", "must not contain empty, . or .. segments")
			break
		}
	}
	if d.Region == "" {
		v.addf(p+".region", "required")
	}
	if d.Endpoint != "" {
		u, err := url.Parse(d.Endpoint)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			v.addf(p+".endpoint", "want an http:// or https:// URL, e.g. https://s3.example.com:9000")
		case u.User != nil:
			v.addf(p+".endpoint", "must not contain credentials; use access_key_id and secret_access_key")
		case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
			v.addf(p+".endpoint", "want scheme, host and port only, e.g. https://s3.example.com:9000")
		}
	}
	id, secret := !d.AccessKeyID.IsZero(), !d.SecretAccessKey.IsZero()
	switch {
	case id && !secret:
		v.addf(p+".secret_access_key", "required when access_key_id is set")
	case secret && !id:
		v.addf(p+".access_key_id", "required when secret_access_key is set")
	}
	if !d.SessionToken.IsZero() && !(id && secret) {
		v.addf(p+".session_token", "requires access_key_id and secret_access_key")
	}
	if d.PartSize < MinS3PartSize || d.PartSize > MaxS3PartSize {
		v.addf(p+".part_size", "must be between %s and %s, got %s", MinS3PartSize, MaxS3PartSize, d.PartSize)
	}
	if d.Concurrency < 1 || d.Concurrency > MaxS3Concurrency {
		v.addf(p+".concurrency", "must be between 1 and %d, got %d", MaxS3Concurrency, d.Concurrency)
	}
	if l := d.ObjectLock; l != nil {
		if l.Mode != "governance" && l.Mode != "compliance" {
			v.addf(p+".object_lock.mode", "want governance or compliance, got %s", quoteValue(l.Mode))
		}
		if l.Days < 1 || l.Days > MaxObjectLockDays {
			v.addf(p+".object_lock.days", "must be between 1 and %d, got %d", MaxObjectLockDays, l.Days)
		}
	}
}

func (v *validator) stall(p string, d *Destination) {
	if d.StallTimeout != 0 && d.StallTimeout < time.Second {
		v.addf(p+".stall_timeout", "must be at least 1s, got %s", d.StallTimeout)
	}
}

// notApplicable reports keys that do not belong to destinations of type typ:
// those the file set, and those set in code.
func (v *validator) notApplicable(p, typ string, set map[string]bool) {
	for _, key := range sortedKeys(set) {
		kp := p + "." + key
		if set[key] || v.c.has(kp) {
			v.addf(kp, "does not apply to %s destinations", typ)
		}
	}
}

func (v *validator) targets() {
	if len(v.c.Targets) == 0 {
		v.addf("targets", "at least one target is required")
	}
	for _, name := range sortedKeys(v.c.Targets) {
		p := childPath("targets", name)
		t := v.c.Targets[name]
		v.name(p, name)
		if t == nil {
			v.addf(p, "empty target")
			continue
		}
		switch {
		case t.Engine == "":
			v.addf(p+".engine", "required (%s)", enginesList())
		case !isEngine(t.Engine):
			v.addf(p+".engine", "unknown engine %s (want %s)", quoteValue(t.Engine), enginesList())
		}
		if t.DSN.IsZero() {
			v.addf(p+".dsn", "required (set dsn or dsn_file)")
		}
		if t.Schedule != "" {
			if _, err := ParseSchedule(t.Schedule); err != nil {
				v.addf(p+".schedule", "%v", err)
			}
		}
		v.targetDestinations(p+".destinations", t.Destinations)
		if t.Retention != nil {
			v.retention(p+".retention", t.Retention)
		}
		if t.Verify != nil {
			v.verify(p+".verify", t.Verify, t.Engine)
			if v.c.has(p+".verify.key_tolerance") && !t.IsRedis() {
				v.addf(p+".verify.key_tolerance", "only for redis and valkey targets (the other engines record exact counts)")
			}
			if t.Verify.Continuity != nil {
				v.continuity(p+".verify.continuity", t.Verify.Continuity)
			}
		}
	}
}

func (v *validator) targetDestinations(p string, names []string) {
	if len(names) == 0 {
		v.addf(p, "at least one destination is required")
		return
	}
	seen := map[string]bool{}
	for i, name := range names {
		ip := indexPath(p, i)
		switch {
		case name == "":
			v.addf(ip, "empty destination name")
		case v.c.Destinations[name] == nil:
			defined := "none are defined"
			if len(v.c.Destinations) > 0 {
				defined = "defined: " + strings.Join(sortedKeys(v.c.Destinations), ", ")
			}
			v.addf(ip, "unknown destination %s (%s)", quoteValue(name), defined)
		case seen[name]:
			v.addf(ip, "duplicate destination %s", quoteValue(name))
		}
		seen[name] = true
	}
}

func (v *validator) retention(p string, r *Retention) {
	counts := []struct {
		key string
		n   int
	}{
		{"keep_last", r.KeepLast},
		{"keep_hourly", r.KeepHourly},
		{"keep_daily", r.KeepDaily},
		{"keep_weekly", r.KeepWeekly},
		{"keep_monthly", r.KeepMonthly},
		{"keep_yearly", r.KeepYearly},
	}
	keeps := r.KeepWithin > 0
	for _, c := range counts {
		if c.n < 0 {
			v.addf(p+"."+c.key, "must not be negative")
		}
		keeps = keeps || c.n > 0
	}
	if r.KeepWithin < 0 {
		v.addf(p+".keep_within", "must not be negative")
	}
	if !keeps {
		v.summaryf(p, "keeps nothing: set at least one keep_* rule, or remove retention to keep every backup")
	}
}

func (v *validator) verify(p string, vf *Verify, engine string) {
	if vf.Schedule != "" {
		if _, err := ParseSchedule(vf.Schedule); err != nil {
			v.addf(p+".schedule", "%v", err)
		}
	}
	switch vf.Pick {
	case VerifyPickLatest, VerifyPickRandom:
	default:
		v.addf(p+".pick", "unknown pick %s (want latest or random)", quoteValue(vf.Pick))
	}
	if vf.Window < 0 {
		v.addf(p+".window", "must be positive")
	}
	seen := map[string]int{}
	for i, c := range vf.Checks {
		cp := indexPath(p+".checks", i)
		switch {
		case c.Name == "":
			v.addf(cp+".name", "required")
		case !isCheckName(c.Name):
			v.addf(cp+".name", "invalid name %s: use lower-case letters, digits, '.', '_' and '-', starting with a letter or digit", quoteValue(c.Name))
		default:
			if first, dup := seen[c.Name]; dup {
				v.addf(cp+".name", "duplicate check name %s (also checks[%d])", quoteValue(c.Name), first)
			} else {
				seen[c.Name] = i
			}
		}
		switch {
		case strings.TrimSpace(c.Query) == "":
			v.addf(cp+".query", "required")
		case v.c.opts.CheckQuery != nil:
			if err := v.c.opts.CheckQuery(engine, c.Query); err != nil {
				v.addf(cp+".query", "%v (check %s)", err, quoteValue(c.Name))
			}
		}
		hasExpect := c.Expect != "" || v.c.has(cp+".expect")
		hasMaxAge := c.MaxAge != 0 || v.c.has(cp+".max_age")
		switch {
		case hasExpect && hasMaxAge:
			v.summaryf(cp, "set either expect or max_age, not both")
		case !hasExpect && !hasMaxAge:
			v.summaryf(cp, "one of expect or max_age is required")
		case hasExpect:
			if _, err := ParseExpect(c.Expect); err != nil {
				v.addf(cp+".expect", "%v", err)
			}
		case c.MaxAge <= 0:
			v.addf(cp+".max_age", "must be positive")
		}
	}
}

// isName reports whether s is a valid destination or target name:
// [A-Za-z0-9][A-Za-z0-9._-]*. Target names become path segments.
func isName(s string) bool {
	for i, r := range s {
		alnum := (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		if !alnum && (i == 0 || (r != '.' && r != '_' && r != '-')) {
			return false
		}
	}
	return s != ""
}

// isCheckName reports whether s is a valid check name: [a-z0-9][a-z0-9_.-]*.
// Check names become metric label values.
func isCheckName(s string) bool {
	return isName(s) && strings.ToLower(s) == s
}

func isEngine(s string) bool {
	switch s {
	case EnginePostgres, EngineMongoDB, EngineRedis, EngineValkey, EngineMySQL, EngineMariaDB:
		return true
	}
	return false
}

func enginesList() string {
	return EnginePostgres + ", " + EngineMongoDB + ", " + EngineRedis + ", " + EngineValkey + ", " + EngineMySQL + " or " + EngineMariaDB
}
