// Command agent is the ecklink agent.
package main

import (
	"os"

	"github.com/ecklink/ecklink/agent/command"
)

func main() {
	os.Exit(command.Execute(command.NewAgentCommand()))
}
