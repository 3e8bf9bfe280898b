package cli

import (
	"context"
	"math/rand/v2"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/backproof/backproof/backup"
	"github.com/backproof/backproof/config"
	"github.com/backproof/backproof/daemon"
	"github.com/backproof/backproof/metrics"
	"github.com/backproof/backproof/verify"
)

// daemonStopTimeout bounds how long SIGTERM waits for cancelled jobs: a
// cancelled pg_dump gets SIGTERM and a 10 s grace, a sandbox is killed.
const daemonStopTimeout = 30 * time.Second

func (e *env) daemonCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "daemon",
		Short: "Run the schedules and serve /metrics, /status and the status page",
		Long: `Run each target's backup and verify schedules (pruning follows each
successful backup), and serve on the config's listen address: /metrics,
/healthz, /readyz, /status (JSON) and a status page at /.
SIGHUP reloads the config: a valid one replaces the schedule, an invalid one
is logged and the running schedule stays. SIGTERM or SIGINT stop scheduling,
cancel running jobs (no partial backup is committed) and exit.
Logs are JSON unless log.format says text.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			e.daemonMode = true
			cfg, err := e.loadConfig()
			if err != nil {
				return err
			}
			for _, w := range cfg.Warnings() {
				e.log.Warn("config: " + w)
			}
			hupSig := make(chan os.Signal, 1)
			signal.Notify(hupSig, syscall.SIGHUP)
			defer signal.Stop(hupSig)
			hup := make(chan struct{}, 1)
			go func() {
				for range hupSig {
					select {
					case hup <- struct{}{}:
					default:
					}
				}
			}()
			reg := prometheus.NewRegistry()
			d := &daemon.Daemon{
				Jobs:        &daemonJobs{e: e},
				Log:         e.log,
				Registry:    reg,
				Metrics:     metrics.New(reg, e.build.Version),
				Version:     e.build.Version,
				StopTimeout: daemonStopTimeout,
				Redact:      e.redactor.String,
				Reload: func() (*config.Config, error) {
					cfg, err := config.LoadWith(e.configPath, configOptions)
					if err == nil {
						err = checkSupported(cfg)
					}
					if err != nil {
						return nil, err
					}
					e.redactor.Add(secrets(cfg)...)
					return cfg, nil
				},
			}
			err = d.Run(e.ctx, cfg, hup)
			if err == nil && e.ctx.Err() != nil {
				return nil // stopped by a signal, as intended
			}
			return err
		},
	}
}

// daemonJobs runs the daemon's jobs with the same wiring as the commands.
type daemonJobs struct{ e *env }

func (j *daemonJobs) Backup(ctx context.Context, cfg *config.Config, t *config.Target) (*backup.Result, error) {
	log := j.e.log.With("target", t.Name)
	eng, err := newEngine(t, log)
	if err != nil {
		return nil, err
	}
	if err := checkWriter(cfg); err != nil {
		return nil, err
	}
	rs, err := recipients(cfg)
	if err != nil {
		return nil, err
	}
	opts, err := j.e.leaseOptions()
	if err != nil {
		return nil, err
	}
	runner := &backup.Runner{Log: log, Version: j.e.build.Version}
	return j.e.backupTarget(ctx, runner, backup.Target{
		Name:         t.Name,
		EngineName:   t.Engine,
		Engine:       eng,
		Destinations: openDestinations(ctx, cfg, t.Destinations),
		Encrypt:      rs,
	}, opts)
}

func (j *daemonJobs) Verify(ctx context.Context, cfg *config.Config, t *config.Target) []*verify.Record {
	v, err := j.e.newVerifier(cfg)
	if err != nil { // the identity file went bad since the config was loaded
		now := time.Now()
		var records []*verify.Record
		for _, d := range t.Destinations {
			records = append(records, &verify.Record{Format: verify.RecordFormat, Target: t.Name, Destination: d,
				Outcome: verify.Error, Reason: err.Error(), Started: now, Ended: now})
		}
		return records
	}
	defer v.close()
	pick := verify.PickerFor(t.Verify, rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())))
	var records []*verify.Record
	for _, d := range openDestinations(ctx, cfg, t.Destinations) {
		if ctx.Err() != nil {
			break
		}
		records = append(records, v.runPick(ctx, t, d.Name, d.Destination, "", pick))
	}
	return records
}

func (j *daemonJobs) Prune(ctx context.Context, cfg *config.Config, t *config.Target) error {
	opts, err := j.e.leaseOptions()
	if err != nil {
		return err
	}
	_, err = j.e.pruneTarget(ctx, cfg, t, opts, false)
	return err
}

func (j *daemonJobs) Destinations(ctx context.Context, cfg *config.Config, t *config.Target) []backup.Destination {
	return openDestinations(ctx, cfg, t.Destinations)
}
