package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

func (e *env) configCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Work with the config file"}
	cmd.AddCommand(&cobra.Command{
		Use:   "check",
		Short: "Validate the config and exit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := e.loadConfig()
			if err != nil {
				return err
			}
			for _, w := range cfg.Warnings() {
				fmt.Fprintf(e.stderr, "warning: %s: %s\n", cfg.File, w)
			}
			fmt.Fprintf(e.stdout, "%s: ok (%d targets, %d destinations)\n", cfg.File, len(cfg.Targets), len(cfg.Destinations))
			return nil
		},
	})
	return cmd
}

func (e *env) versionCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print version and build info",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			info := map[string]string{
				"version":   e.build.Version,
				"commit":    e.build.Commit,
				"goversion": runtime.Version(),
				"platform":  runtime.GOOS + "/" + runtime.GOARCH,
			}
			if info["commit"] == "" {
				if bi, ok := debug.ReadBuildInfo(); ok {
					for _, s := range bi.Settings {
						if s.Key == "vcs.revision" {
							info["commit"] = s.Value
						}
					}
				}
			}
			if asJSON {
				return e.writeJSON(info)
			}
			fmt.Fprintf(e.stdout, "backproof %s (commit %s, %s, %s)\n", info["version"], orNone(info["commit"]), info["goversion"], info["platform"])
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func orNone(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// writeJSON prints one JSON document on stdout, with secrets masked in its
// string values before they are encoded.
func (e *env) writeJSON(v any) error {
	data, err := e.redactor.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(e.stdout, string(data))
	return err
}

func formatSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
