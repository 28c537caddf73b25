// Command dist builds agentctl's release archives (`make dist`):
//
//	go run ./deploy/dist/cmd/dist --version 0.2.0 [--out dist/agentctl-0.2.0]
//
// linux and darwin, amd64 and arm64, each a tar.gz with agentctl and LICENSE, plus SHA256SUMS
// and ecklink.krew.yaml (the kubectl plugin manifest). It prints the output folder.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/ecklink/ecklink/deploy/dist"
	"github.com/ecklink/ecklink/deploy/image"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "dist:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := pflag.NewFlagSet("dist", pflag.ContinueOnError)
	version := fs.String("version", "", "release version (required), e.g. 0.2.0")
	out := fs.String("out", "", "output folder (default dist/agentctl-VERSION)")
	url := fs.String("url", "https://github.com/ecklink/ecklink/releases/download/v{{.Version}}/{{.Name}}",
		"download URL of an archive for the krew manifest ({{.Name}} is the archive's file name)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *version == "" {
		return errors.New("--version is required")
	}
	if *out == "" {
		*out = "dist/agentctl-" + *version
	}
	created := int64(0)
	if n, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64); err == nil {
		created = n
	}
	// {{.Version}} in the URL is the release's, not the archive's field: render it first.
	archives, err := dist.Build(ctx, dist.Config{
		Version: *version, Package: "./agent/cmd/agentctl", Dir: ".", VersionVar: image.VersionVar,
		OutDir: *out, License: "LICENSE", Created: time.Unix(created, 0), URL: strings.ReplaceAll(*url, "{{.Version}}", *version),
	})
	if err != nil {
		return err
	}
	for _, a := range archives {
		fmt.Fprintf(os.Stderr, "dist: %s %s\n", a.SHA256, a.Name)
	}
	fmt.Println(*out)
	return nil
}
