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
	"github.com/backproof/backproof/engine/postgres"
	"github.com/backproof/backproof/engine/redis"
	"github.com/backproof/backproof/sign"
)

// dbEngine is what every engine of this build does: dump, and prove dumps by
// restoring them.
type dbEngine interface {
	engine.Engine
	engine.Prover
	// Objects counts what a restore into the database at dsn would collide with.
	Objects(ctx context.Context, dsn string) (int, error)
	// RestoreInto restores a spooled artifact into the database at dsn. Its
	// error says what state a failed restore left the target in.
	RestoreInto(ctx context.Context, dsn, path string, info *engine.DumpInfo, opts engine.RestoreOptions) error
	// Describe names the database at dsn without its credentials.
	Describe(dsn string) string
	// ConnString is a connection string for srv, for a person to use; it
	// holds the password.
	ConnString(srv engine.Server) string
}

// The engines this build implements. config accepts every engine of the
// contract; the ones missing here are refused by `config check`.
var engines = map[string]func(t *config.Target, log *slog.Logger) dbEngine{
	"postgres": func(t *config.Target, log *slog.Logger) dbEngine {
		return postgres.New(t.DSN.Reveal(), postgres.WithLogger(log))
	},
	"redis": func(t *config.Target, log *slog.Logger) dbEngine {
		return redis.New(t.DSN.Reveal(), redis.WithLogger(log))
	},
	"mongodb": func(t *config.Target, log *slog.Logger) dbEngine {
		return mongodb.New(t.DSN.Reveal(), mongodb.WithLogger(log))
	},
}

func newEngine(t *config.Target, log *slog.Logger) (dbEngine, error) {
	mk, ok := engines[t.Engine]
	if !ok {
		return nil, fmt.Errorf("target %s: engine %q is not supported by this build yet", t.Name, t.Engine)
	}
	return mk(t, log), nil
}

func openDestination(ctx context.Context, d *config.Destination) (destination.Destination, error) {
	switch d.Type {
	case config.DestinationLocal:
		return local.New(d.Path)
	case config.DestinationS3:
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
		out = append(out, backup.Destination{Name: n, Destination: d})
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
