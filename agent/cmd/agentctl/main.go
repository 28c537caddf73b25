// Command agentctl pairs ecklink environments and shows and diagnoses their links.
package main

import (
	"os"

	"github.com/ecklink/ecklink/agent/ctl"
)

func main() {
	os.Exit(ctl.Main(os.Args[1:], ctl.Options{}))
}
