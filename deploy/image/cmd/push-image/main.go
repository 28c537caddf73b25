// Command push-image publishes what build-image wrote, without a container engine:
//
//	go run ./deploy/image/cmd/push-image --registry registry.example.com/ecklink [--layout dist/ecklink-agent-0.2.0-oci]
//
// It pushes the multi-arch index to REGISTRY/agent:VERSION and its SBOM artifact, authenticating
// with the credentials of ~/.docker/config.json (docker login, crane auth login, or a credential
// helper), and prints the digest reference to set as the chart's image.digest.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/pflag"

	"github.com/ecklink/ecklink/deploy/image"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "push-image:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := pflag.NewFlagSet("push-image", pflag.ContinueOnError)
	registry := fs.String("registry", "", "registry and path the image goes under, as REGISTRY/agent:VERSION (required), e.g. ghcr.io/ecklink")
	dir := fs.String("layout", "", "OCI layout written by build-image (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *registry == "" || *dir == "" {
		return errors.New("--registry and --layout are required")
	}
	rel, err := image.ReadLayout(*dir)
	if err != nil {
		return err
	}
	repo := strings.TrimSuffix(*registry, "/") + "/agent"
	d, err := image.Push(ctx, repo, rel, remote.WithAuthFromKeychain(authn.DefaultKeychain))
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "push-image: pushed %s:%s and its SBOM\n", repo, rel.Tag)
	fmt.Println(d.String())
	return nil
}
