package ctl

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"

	"github.com/ecklink/ecklink/agent/identity"
	"github.com/ecklink/ecklink/agent/signing"
)

func newRotateSigningCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "signing --context A",
		Short: "Rotate the strong-identity signing CA of environment A now",
		Long: `Asks the agent of --context to rotate its signing CA now (strong identity, Elasticsearch 9.3+:
the CA that issues the signing certificate of each local Elasticsearch, whose subject the peers
put into the certificate_identity of the link's API key), as it does on its own at 2/3 of the
CA's life: it creates a new CA and sends it to every peer with the import requests, signs with
it as soon as every peer's Elasticsearch trusts it, and reissues each local Elasticsearch's
signing certificate from it, without disconnecting any link. The CA it replaces stays trusted
by the peers until its certificates expire or the next rotation, whichever comes first.

The request is an annotation of the agent's public ConfigMap ecklink-agent-identity
(ecklink.io/rotate-signing-request), where the agent reports its progress: agentctl needs no
access to the CA's key or its Secret. The agent takes requests up once a minute. Waits until
the new CA signs unless --wait=false.`,
		Example: `  agentctl rotate signing --context east`,
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.rotateSigning(cmd.Context(), g.waitDefault(cmd, true))
		},
	}
}

// rotateSigningResult is the output of rotate signing.
type rotateSigningResult struct {
	caRotationRequest
	caRotationReport
}

func (g *globals) rotateSigning(ctx context.Context, wait bool) error {
	e, err := g.local()
	if err != nil {
		return err
	}
	res := rotateSigningResult{caRotationRequest: caRotationRequest{Request: g.opts.Now().UTC().Format(time.RFC3339Nano)}}
	err = requestCARotation(ctx, e, func(cm *corev1.ConfigMap) bool {
		res.Environment = cm.Data[identity.KeyEnvironment]
		cm.Annotations[signing.AnnotationRotateRequest] = res.Request
		return true
	})
	if err != nil {
		return fmt.Errorf("failed to request the signing CA rotation: %w", err)
	}
	g.progress("rotation of the signing CA of %s requested (request %s)", res.Environment, res.Request)
	return g.finishCARotation(ctx, e, signingCARotation, wait, &res, res.caRotationRequest, &res.caRotationReport, func(w io.Writer) {
		fmt.Fprintf(w, "rotation of the signing CA of %s requested; the agent reports on it in the annotation %s of ConfigMap %s/%s\n",
			res.Environment, signing.AnnotationRotateStatus, e.namespace, identity.ConfigMapName)
	})
}
