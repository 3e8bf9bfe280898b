// Package cli is backproof's command line: it parses flags, loads the
// config, wires engines and destinations together and turns errors into the
// exit codes PRODUCT.md fixes. Nothing below it knows about exit codes.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/backproof/backproof/config"
	"github.com/backproof/backproof/internal/redact"
)

// Exit codes.
const (
	ExitOK          = 0
	ExitError       = 1 // could not run: server down, destination unreachable, ...
	ExitUsage       = 2 // usage or config error
	ExitBadBackup   = 3 // verification ran and the backup proved bad
	ExitInterrupted = 130
)

// Build describes the binary, set by main from linker flags.
type Build struct {
	Version string
	Commit  string
}

// env is what a command invocation sees of the world.
type env struct {
	ctx    context.Context
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
	build  Build

	configPath string
	started    bool // a command's own code began to run
	redactor   *redact.Redactor
	log        *slog.Logger
	daemonMode bool // the daemon runs: logs default to JSON
}

// usageError marks a problem with how the command was called.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// Main runs the command line and returns the exit code. ctx is cancelled on
// SIGINT/SIGTERM.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string, build Build) int {
	e := &env{ctx: ctx, stdout: stdout, stderr: stderr, getenv: getenv, build: build}
	e.log = slog.New(slog.NewTextHandler(stderr, nil))
	root := e.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err != nil && !e.started {
		err = &usageError{err} // cobra's own: unknown command, flag or arguments
	}
	code := exitCode(ctx, err)
	if err != nil && code != ExitOK {
		fmt.Fprintf(stderr, "backproof: %s\n", e.redactor.String(err.Error()))
		var ue *usageError
		if errors.As(err, &ue) && !strings.Contains(err.Error(), "config") {
			fmt.Fprintln(stderr, "Run 'backproof --help' for usage.")
		}
	}
	return code
}

func exitCode(ctx context.Context, err error) int {
	var ce *config.Error
	var ue *usageError
	switch {
	case err == nil:
		return ExitOK
	case ctx.Err() != nil:
		return ExitInterrupted
	case errors.As(err, &ce), errors.As(err, &ue):
		return ExitUsage
	case errors.Is(err, errBadBackup):
		return ExitBadBackup
	default:
		return ExitError
	}
}

// errBadBackup marks a verification that ran and found the backup bad.
var errBadBackup = errors.New("backup proved bad")

func (e *env) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "backproof",
		Short:         "Scheduled database backups to several destinations, proven by restoring them",
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.PersistentFlags().StringVarP(&e.configPath, "config", "c", e.getenv("BACKPROOF_CONFIG"), "config file (default $BACKPROOF_CONFIG)")
	root.PersistentPreRun = func(*cobra.Command, []string) { e.started = true }
	root.AddCommand(
		e.daemonCommand(),
		e.backupCommand(),
		e.verifyCommand(),
		e.restoreCommand(),
		e.listCommand(),
		e.pruneCommand(),
		e.acceptCommand(),
		e.configCommand(),
		e.keygenCommand(),
		e.reportCommand(),
		e.receiptCommand(),
		e.adoptCommand(),
		e.versionCommand(),
		e.demoCommand(),
	)
	return root
}

// loadConfig loads the config named by -c and sets up logging from it.
func (e *env) loadConfig() (*config.Config, error) {
	if e.configPath == "" {
		return nil, usagef("no config file: pass -c FILE or set BACKPROOF_CONFIG")
	}
	cfg, err := config.LoadWith(e.configPath, configOptions)
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			return nil, err
		}
		return nil, usagef("%w", err)
	}
	e.redactor = redact.New(secrets(cfg)...)
	e.log = e.newLogger(cfg.Log)
	if err := checkSupported(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// checkSupported refuses a valid config that asks for what this build cannot
// do yet, rather than doing less than it says.
func checkSupported(cfg *config.Config) error {
	var problems []string
	for _, name := range cfg.TargetNames() {
		t := cfg.Targets[name]
		k, ok := kindOf(t.Engine)
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: targets.%s.engine: %q is not supported by this build yet",
				cfg.File, name, t.Engine))
			continue
		}
		if _, err := k.New(t.DSN.Reveal(), slog.New(slog.DiscardHandler)); err != nil {
			problems = append(problems, fmt.Sprintf("%s: targets.%s.dsn: %v", cfg.File, name, err))
		}
	}
	if len(problems) > 0 {
		return usagef("%s", strings.Join(problems, "\n"))
	}
	return nil
}

// newLogger logs to stderr through the redactor; the daemon's default
// format is JSON, the commands' text.
func (e *env) newLogger(c config.Log) *slog.Logger {
	if c.Format == "" && e.daemonMode {
		c.Format = "json"
	}
	return newLogger(e.stderr, c, e.redactor)
}

func newLogger(w io.Writer, c config.Log, r *redact.Redactor) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Level)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if c.Format == "json" {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(r.Handler(h))
}

// selectTargets returns the named targets, or all of them when none is named.
// loadTargets loads the config and selects the named targets (all when none
// are named); destination, when set, must name a configured destination.
func (e *env) loadTargets(names []string, destination string) (*config.Config, []*config.Target, error) {
	cfg, err := e.loadConfig()
	if err != nil {
		return nil, nil, err
	}
	if _, ok := cfg.Destinations[destination]; destination != "" && !ok {
		return nil, nil, usagef("unknown destination %q", destination)
	}
	targets, err := selectTargets(cfg, names)
	if err != nil {
		return nil, nil, err
	}
	return cfg, targets, nil
}

func selectTargets(cfg *config.Config, names []string) ([]*config.Target, error) {
	if len(names) == 0 {
		var all []*config.Target
		for _, n := range cfg.TargetNames() {
			all = append(all, cfg.Targets[n])
		}
		return all, nil
	}
	var out []*config.Target
	seen := map[string]bool{}
	for _, n := range names {
		t, ok := cfg.Targets[n]
		if !ok {
			return nil, usagef("unknown target %q (configured: %s)", n, strings.Join(cfg.TargetNames(), ", "))
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, t)
		}
	}
	return out, nil
}
