package ctl

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ecklink/ecklink/agent/identity"
	"github.com/ecklink/ecklink/internal/pemutil"
	"github.com/ecklink/ecklink/internal/tlsprobe"
)

// checkFlags are the flags of `agentctl check`.
type checkFlags struct {
	readyURL    string
	peerAddress string
	environment string
	caFile      string
	interval    time.Duration
}

// checkResult is one probe's outcome, for every output format.
type checkResult struct {
	Check   string `json:"check"`
	Target  string `json:"target"`
	OK      bool   `json:"ok"`
	Message string `json:"message"`
}

func newCheckCommand(g *globals) *cobra.Command {
	f := &checkFlags{}
	cmd := &cobra.Command{
		Use:   "check --ready-url URL --peer-address HOST:PORT --environment ENV --ca-file FILE",
		Short: "Check that an agent is ready and that its peer port serves its identity",
		Long: `Probes one agent from the network, without the Kubernetes API: GET --ready-url must answer 200
(the agent's /readyz), and a TLS handshake with --peer-address must present a certificate for
environment --environment that chains to a CA of --ca-file (the agent CA bundle, key bundle.crt of
ConfigMap ecklink-agent-identity). It retries both until they pass or --timeout ends. The chart's
helm test pod runs it; from a workstation it checks that a peer endpoint is reachable and is the
agent it should be.`,
		Example: `  agentctl check --ready-url http://ecklink-metrics.ecklink.svc:9401/readyz \
    --peer-address agent.eu-west.example.com:9400 --environment eu-west --ca-file bundle.crt`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return g.runCheck(cmd.Context(), f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.readyURL, "ready-url", "", "URL of the agent's /readyz (http)")
	fl.StringVar(&f.peerAddress, "peer-address", "", "host:port of the agent's peer port")
	fl.StringVar(&f.environment, "environment", "", "environment the peer port's certificate must name")
	fl.StringVar(&f.caFile, "ca-file", "", "PEM bundle of the agent CAs (bundle.crt of ConfigMap ecklink-agent-identity)")
	fl.DurationVar(&f.interval, "interval", 2*time.Second, "time between attempts")
	for _, name := range []string{"ready-url", "peer-address", "environment", "ca-file"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}

// runCheck retries both probes until they pass or --timeout ends, then prints the last results.
func (g *globals) runCheck(ctx context.Context, f *checkFlags) error {
	pem, err := os.ReadFile(f.caFile)
	if err != nil {
		return usageErr(fmt.Errorf("--ca-file: %w", err))
	}
	cas, err := pemutil.ParseCertificates(pem, pemutil.Limits{})
	if err != nil || len(cas) == 0 {
		return usageErr(fmt.Errorf("--ca-file %s: no PEM certificates (%v)", f.caFile, err))
	}
	if err := identity.ValidateEnvironment(f.environment); err != nil {
		return usageErr(fmt.Errorf("--environment: %w", err))
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	var results []checkResult
	for {
		attempt := []checkResult{g.checkReady(ctx, f.readyURL), g.checkPeerPort(ctx, f.peerAddress, f.environment, cas)}
		if results != nil && ctx.Err() != nil && (!attempt[0].OK || !attempt[1].OK) {
			// --timeout cut this attempt short ("i/o timeout" instead of what failed): the
			// previous, complete attempt says more.
			return g.reportCheck(results)
		}
		results = attempt
		if results[0].OK && results[1].OK {
			break
		}
		g.progress("waiting: %s", firstFailure(results))
		select {
		case <-ctx.Done():
			return g.reportCheck(results)
		case <-time.After(f.interval):
		}
	}
	return g.reportCheck(results)
}

func firstFailure(results []checkResult) string {
	for _, r := range results {
		if !r.OK {
			return r.Check + ": " + r.Message
		}
	}
	return ""
}

// reportCheck prints the results and fails when one did not pass.
func (g *globals) reportCheck(results []checkResult) error {
	err := g.print(results, func(w io.Writer) error {
		t := newTable(w)
		row(t, "CHECK", "TARGET", "RESULT", "MESSAGE")
		for _, r := range results {
			res := "ok"
			if !r.OK {
				res = "FAILED"
			}
			row(t, r.Check, r.Target, res, r.Message)
		}
		return t.Flush()
	})
	if err != nil {
		return err
	}
	if firstFailure(results) != "" {
		return errChecksFailed
	}
	return nil
}

// checkReady GETs the readiness URL.
func (g *globals) checkReady(ctx context.Context, url string) checkResult {
	r := checkResult{Check: "readyz", Target: url}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		r.Message = err.Error()
		return r
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.Message = err.Error()
		return r
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	_ = resp.Body.Close()
	r.OK = resp.StatusCode == http.StatusOK
	r.Message = resp.Status
	return r
}

// checkPeerPort completes a TLS handshake and verifies the server certificate: it names env and
// chains to one of cas. The agent requires a client certificate, which this probe has not: the
// server's certificate is judged before that matters, and nothing is sent.
func (g *globals) checkPeerPort(ctx context.Context, addr, env string, cas []*x509.Certificate) checkResult {
	r := checkResult{Check: "peer-port", Target: addr}
	chain, err := tlsprobe.Handshake(ctx, addr, "", 10*time.Second)
	if err != nil {
		r.Message = err.Error()
		return r
	}
	got, err := identity.EnvironmentFromCertificate(chain[0])
	switch {
	case err != nil:
		r.Message = err.Error()
	case got != env:
		r.Message = fmt.Sprintf("certificate names environment %q, want %q", got, env)
	default:
		if err := tlsprobe.VerifyChain(chain, cas, g.opts.Now()); err != nil {
			r.Message = fmt.Sprintf("certificate of %q does not chain to the agent CA bundle: %v", env, err)
			return r
		}
		r.OK = true
		r.Message = fmt.Sprintf("certificate of environment %q, chains to the agent CA bundle", env)
	}
	return r
}
