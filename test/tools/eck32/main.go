// Command elastic-operator builds the ECK operator 3.2 (Elastic License 2.0) from the Go module proxy for
// the test bed. It is a test tool only: never vendored, committed as a binary, or shipped.
package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/elastic/cloud-on-k8s/v3/cmd/manager"
)

func main() {
	root := &cobra.Command{Use: "elastic-operator", SilenceUsage: true}
	root.AddCommand(manager.Command())
	if err := root.Execute(); err != nil {
		os.Exit(1)
	}
}
