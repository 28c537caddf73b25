// Command kube-apiserver builds the upstream kube-apiserver from the Go module proxy for the test bed.
// It is a test tool only: it is never shipped in the image or the chart.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
