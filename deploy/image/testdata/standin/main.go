// Command standin is a tiny stand-in for the agent in image tests: it prints the version that
// the image build writes with -ldflags -X.
package main

import "fmt"

var version = "unset"

func main() { fmt.Println("standin", version) }
