package ctl

import (
	"fmt"
	"io"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/ecklink/ecklink/internal/version"
)

// versionInfo is the output of version.
type versionInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit,omitempty"`
	GoVersion string `json:"goVersion"`
}

func newVersionCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print agentctl's version",
		Args:  args(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			v := versionInfo{Version: version.Version, Commit: version.Commit(), GoVersion: runtime.Version()}
			return g.print(v, func(w io.Writer) error {
				fmt.Fprintf(w, "agentctl %s", v.Version)
				if v.Commit != "" {
					fmt.Fprintf(w, " (commit %.12s)", v.Commit)
				}
				fmt.Fprintf(w, " %s\n", v.GoVersion)
				return nil
			})
		},
	}
}
