// Command etcd builds the upstream etcd server from the Go module proxy for the test bed.
// It is a test tool only: it is never shipped in the image or the chart.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
