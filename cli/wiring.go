package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/backproof/backproof/backup"
	"github.com/backproof/backproof/config"
	"github.com/backproof/backproof/destination"
	"github.com/backproof/backproof/destination/local"
	"github.com/backproof/backproof/destination/s3"
	"github.com/backproof/backproof/engine"
	"github.com/backproof/backproof/engine/mongodb"
	"github.com/backproof/backproof/engine/mysql"
	"github.com/backproof/backproof/engine/postgres"
	"github.com/backproof/backproof/engine/redis"
	"github.com/backproof/backproof/sign"
)

// kinds are the engines of this build, one line each (see engine.Kind).
// config accepts every engine of the contract; the ones missing here are
// refused by `config check`.
var kinds = []engine.Kind{
	postgres.Kind,
	mongodb.Kind,
	redis.Kind, redis.ValkeyKind,
	mysql.Kind, mysql.MariaDBKind,
}

// kindOf returns the registered engine named name.
func kindOf(name string) (engine.Kind, bool) {
	for _, k := range kinds {
		if k.Name == name {
			return k, true
		}
	}
	return engine.Kind{}, false
}

// configOptions validate a config with the engines' rules.
var configOptions = config.Options{
	CheckQuery: func(name, query string) error {
		if k, ok := kindOf(name); ok && k.CheckQuery != nil {
			return k.CheckQuery(query)
		}
		return nil
	},
}

// secrets are the config's secrets and those the engines find in its DSNs.
func secrets(cfg *config.Config) []string {
	out := cfg.Secrets()
	for _, name := range cfg.TargetNames() {
		if t := cfg.Targets[name]; t != nil {
			out = append(out, dsnSecrets(t.Engine, t.DSN.Reveal())...)
		}
	}
	return out
}

// dsnSecrets are the secrets in a DSN of the engine named name: what the engine finds, and
// the password of every DSN form config knows.
func dsnSecrets(name, dsn string) []string {
	out := config.DSNPasswords(dsn)
	if k, ok := kindOf(name); ok && k.Secrets != nil {
		out = append(out, k.Secrets(dsn)...)
	}
	return out
}

// words are the nouns the output uses for what the engine named name counts.
func words(name string) engine.Words {
	k, _ := kindOf(name)
	return k.Words.Or()
}

func newEngine(t *config.Target, log *slog.Logger) (engine.Engine, error) {
	k, ok := kindOf(t.Engine)
	if !ok {
		return nil, fmt.Errorf("target %s: engine %q is not supported by this build yet", t.Name, t.Engine)
	}
	eng, err := k.New(t.DSN.Reveal(), log)
	if err != nil {
		return nil, fmt.Errorf("target %s: dsn: %w", t.Name, err)
	}
	return eng, nil
}

func openDestination(ctx context.Context, d *config.Destination) (destination.Destination, error) {
	switch d.Type {
	case config.DestinationLocal:
		return local.New(d.Path)
	case config.DestinationS3:
		var lock s3.Lock
		if d.ObjectLock != nil {
			lock = s3.Lock{Mode: d.ObjectLock.Mode, Days: d.ObjectLock.Days}
		}
		return s3.New(ctx, s3.Config{
			Bucket:          d.Bucket,
			Prefix:          d.Prefix,
			Region:          d.Region,
			Endpoint:        d.Endpoint,
			PathStyle:       d.PathStyle,
			AccessKeyID:     d.AccessKeyID.Reveal(),
			SecretAccessKey: d.SecretAccessKey.Reveal(),
			SessionToken:    d.SessionToken.Reveal(),
			PartSize:        int64(d.PartSize),
			Concurrency:     d.Concurrency,
			Lock:            lock,
			StallTimeout:    d.StallTimeout,
		})
	default:
		return nil, fmt.Errorf("unknown destination type %q", d.Type)
	}
}

// openDestinations opens each named destination. One that cannot be opened
// becomes a destination whose every operation fails with that error, so it
// is reported like any other failed destination and never stops the rest.
//
// Every destination is wrapped in a sign.Store: manifests and records are
// signed on the way out and checked on the way back (signing, encryption and
// where a record lies).
func openDestinations(ctx context.Context, cfg *config.Config, names []string) []backup.Destination {
	policy, perr := trustPolicy(cfg)
	out := make([]backup.Destination, 0, len(names))
	for _, n := range names {
		d, err := openDestination(ctx, cfg.Destinations[n])
		if err == nil {
			err = perr
		}
		if err != nil {
			d = broken{err}
		} else {
			d = &sign.Store{Destination: d, Name: n, Policy: policy}
		}
		stall := config.DefaultStallTimeout
		if c := cfg.Destinations[n]; c != nil && c.StallTimeout != 0 {
			stall = c.StallTimeout
		}
		out = append(out, backup.Destination{Name: n, Destination: d, StallTimeout: stall})
	}
	return out
}

// trustPolicy is what the config demands of manifests and records.
func trustPolicy(cfg *config.Config) (sign.Policy, error) {
	p := sign.Policy{Encrypted: cfg.Encryption != nil}
	s := cfg.Signing
	if s == nil {
		return p, nil
	}
	trust, err := sign.NewTrust(s.TrustedKeys)
	if err != nil {
		return p, usagef("%s: signing.trusted_keys: %v", cfg.File, err)
	}
	p.Trust = trust
	if s.KeyFile != "" {
		signer, err := sign.ParsePrivateKey([]byte(s.Key.Reveal()))
		if err != nil {
			return p, usagef("%s: signing.key_file: %s: %v", cfg.File, s.KeyFile, err)
		}
		p.Signer = signer
	}
	return p, nil
}

// broken is a destination that could not be opened.
type broken struct{ err error }

func (b broken) Put(context.Context, string, io.Reader) error { return b.err }
func (b broken) Get(context.Context, string) (io.ReadCloser, error) {
	return nil, b.err
}
func (b broken) Stat(context.Context, string) (destination.Object, error) {
	return destination.Object{}, b.err
}
func (b broken) List(context.Context, string) ([]destination.Object, error) { return nil, b.err }
func (b broken) Delete(context.Context, string) error                       { return b.err }
func (b broken) PutIfAbsent(context.Context, string, []byte) error          { return b.err }
