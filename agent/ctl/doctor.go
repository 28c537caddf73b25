package ctl

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/pairing"
)

// Results of a check.
const (
	resultOK   = "ok"
	resultWarn = "warn"
	resultFail = "fail"
	resultSkip = "skip"
)

// The checks, in the order of the path: the first that fails is the verdict.
const (
	checkPeer        = "peer"
	checkPeerTrust   = "peer-trust"
	checkCredentials = "credentials"
	checkProxy       = "proxy-address"
	checkRemoteCA    = "remote-ca"
	checkServerName  = "server-name"
	checkAPIKey      = "api-key"
	checkRemoteInfo  = "remote-info"
)

type doctorFlags struct {
	peer          peerFlags
	endpoints     []string
	peerEndpoints []string
	dialTimeout   time.Duration
	useElastic    bool
}

func newDoctorCommand(g *globals) *cobra.Command {
	var f doctorFlags
	cmd := &cobra.Command{
		Use:   "doctor [REMOTECLUSTER] --context A [--peer-context B]",
		Short: "Check the whole path of remote cluster links and name what fails",
		Long: `Checks each RemoteCluster of the environment of --context (or only REMOTECLUSTER, as
namespace/name or a name unique across namespaces) along the path its Elasticsearch uses, and
names the first failing item with the fix:

  peer           the Peer exists and its stream is connected, with recent heartbeats
  peer-trust     this agent holds the peer's current agent CA bundle
  credentials    the peer answered: CA, API key and cluster settings are applied
  proxy-address  the remote cluster server address accepts TCP connections from here
  remote-ca      a TLS handshake with that address, sending the server name: the certificate
                 presented must chain to the CA bundle in the ConfigMap Elasticsearch trusts
  server-name    the server name is among the presented certificate's SANs
  api-key        the applied API key is not expired; with --peer-context, it is the key the
                 peer's ClusterExport issued and, where the peer's Elasticsearch is reachable,
                 it is neither invalidated nor deleted there
  remote-info    the local Elasticsearch reports the alias connected (GET /_remote/info)

Elasticsearch is reached through its Service, or through --elasticsearch-endpoint (and
--peer-elasticsearch-endpoint) namespace/name=https://host:port when its Service name does not
resolve from here, as for the agent, and as the agent's own user (Secret <es>-ecklink-user, or
ECK's elastic user with --use-elastic-user, for agents run with elasticsearch.useElasticUser).
Network checks run from this machine, not from the
Elasticsearch pods. With --wait, checks again until every check passes.`,
		Example: `  agentctl doctor --context west
  agentctl doctor logs/east-logs --context west --peer-context east -o json`,
		Args: args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			only := ""
			if len(a) == 1 {
				only = a[0]
			}
			return g.doctor(cmd.Context(), only, f)
		},
	}
	addPeerFlags(cmd, &f.peer, false)
	cmd.Flags().StringSliceVar(&f.endpoints, "elasticsearch-endpoint", nil, "namespace/name=https://host:port of a local Elasticsearch (repeatable)")
	cmd.Flags().StringSliceVar(&f.peerEndpoints, "peer-elasticsearch-endpoint", nil, "namespace/name=https://host:port of an Elasticsearch of the peer (repeatable)")
	cmd.Flags().DurationVar(&f.dialTimeout, "dial-timeout", 5*time.Second, "timeout of each network check")
	cmd.Flags().BoolVar(&f.useElastic, "use-elastic-user", false, "call Elasticsearch as ECK's elastic user, as an agent with elasticsearch.useElasticUser does")
	return cmd
}

// doctorReport is the output of doctor.
type doctorReport struct {
	Environment string          `json:"environment"`
	Links       []linkDiagnosis `json:"links"`
	// Healthy is true when no check failed.
	Healthy bool `json:"healthy"`

	now time.Time
}

// linkDiagnosis is the diagnosis of one RemoteCluster.
type linkDiagnosis struct {
	RemoteCluster string  `json:"remoteCluster"`
	Alias         string  `json:"alias"`
	Elasticsearch string  `json:"elasticsearch"`
	Peer          string  `json:"peer"`
	Export        string  `json:"export"`
	Checks        []check `json:"checks"`
	// Failing is the first check that failed, "" when none did.
	Failing string `json:"failing,omitempty"`
}

// check is one step of the path.
type check struct {
	Name        string    `json:"name"`
	Result      string    `json:"result"`
	Item        string    `json:"item"`
	Detail      string    `json:"detail"`
	Fix         string    `json:"fix,omitempty"`
	Certificate *certInfo `json:"certificate,omitempty"`
	// Agent is the agent's own view of the same step, from inside its cluster (the
	// RemoteCluster's ProbeSucceeded condition), on the remote-ca check.
	Agent *agentView `json:"agent,omitempty"`
}

// agentView is the agent's probe verdict, next to doctor's own.
type agentView struct {
	Result  string    `json:"result"`
	Reason  string    `json:"reason"`
	Message string    `json:"message"`
	Since   time.Time `json:"since"`
}

func (g *globals) doctor(ctx context.Context, only string, f doctorFlags) error {
	local, err := g.local()
	if err != nil {
		return err
	}
	peer, err := g.peer(f.peer)
	if err != nil {
		return err
	}
	d := &doctor{g: g, local: local, peer: peer, timeout: f.dialTimeout}
	if d.localES, err = resolver(local, f.endpoints, "--elasticsearch-endpoint", f.useElastic); err != nil {
		return err
	}
	if peer != nil {
		if d.peerES, err = resolver(peer, f.peerEndpoints, "--peer-elasticsearch-endpoint", f.useElastic); err != nil {
			return err
		}
	}
	id, err := pairing.ReadIdentity(ctx, local.kube, local.namespace)
	if err != nil {
		return fmt.Errorf("%s: %w", local.label(), err)
	}
	d.environment = id.Environment
	var r *doctorReport
	run := func(ctx context.Context) (bool, string, error) {
		// Read again on every pass: --wait follows what the agents change.
		rcs, err := d.selectLinks(ctx, only)
		if err != nil {
			return false, "", err
		}
		r = d.run(ctx, rcs)
		var failing []string
		for _, l := range r.Links {
			if l.Failing != "" {
				failing = append(failing, l.RemoteCluster+": "+l.Failing)
			}
		}
		return r.Healthy, strings.Join(failing, "; "), nil
	}
	if g.wait {
		err = g.poll(ctx, "every check to pass", run)
	} else {
		_, _, err = run(ctx)
	}
	if r == nil {
		return err
	}
	if perr := g.print(r, r.table); perr != nil {
		return perr
	}
	if !r.Healthy {
		return errChecksFailed
	}
	return err
}

func resolver(e *env, entries []string, flag string, useElastic bool) (*elastic.Resolver, error) {
	eps, err := elastic.ParseEndpoints(entries)
	if err != nil {
		return nil, usageErr(fmt.Errorf("%s: %w", flag, err))
	}
	return elastic.NewResolver(elastic.ResolverConfig{Kube: e.kube, Endpoints: eps, UseElasticUser: useElastic})
}

// doctor holds what the checks of one run share.
type doctor struct {
	g           *globals
	local, peer *env
	localES     *elastic.Resolver
	peerES      *elastic.Resolver
	environment string
	timeout     time.Duration
}

// selectLinks returns the RemoteClusters to check: all, or the one named.
func (d *doctor) selectLinks(ctx context.Context, only string) ([]*v1alpha1.RemoteCluster, error) {
	if only != "" {
		rc, err := findRemoteCluster(ctx, d.local, only)
		if err != nil {
			return nil, err
		}
		return []*v1alpha1.RemoteCluster{rc}, nil
	}
	all, err := d.local.crds.RemoteClusters().List(ctx, "", metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("no RemoteCluster in %s: nothing to check", d.local.label())
	}
	slices.SortFunc(all, func(a, b *v1alpha1.RemoteCluster) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return all, nil
}

func (d *doctor) run(ctx context.Context, rcs []*v1alpha1.RemoteCluster) *doctorReport {
	r := &doctorReport{Environment: d.environment, Healthy: true, now: d.g.opts.Now()}
	for _, rc := range rcs {
		l := d.diagnose(ctx, rc)
		if l.Failing != "" {
			r.Healthy = false
		}
		r.Links = append(r.Links, l)
	}
	return r
}

func (r *doctorReport) table(w io.Writer) error {
	for i, l := range r.Links {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "RemoteCluster %s (alias %s, Elasticsearch %s, peer %s, export %s)\n", l.RemoteCluster, l.Alias, l.Elasticsearch, l.Peer, l.Export)
		for _, c := range l.Checks {
			tag := "[" + c.Result + "]"
			if c.Result == resultFail {
				tag = "[FAIL]"
			}
			fmt.Fprintf(w, "  %-6s %-13s %s: %s\n", tag, c.Name, c.Item, c.Detail)
			if ci := c.Certificate; ci != nil {
				fmt.Fprintf(w, "  %-6s %-13s certificate: subject %s, issuer %s, SANs %s, expires %s (%s)\n", "", "",
					ci.Subject, ci.Issuer, ci.sans(), until(r.now, ci.NotAfter), ci.NotAfter.Format(time.RFC3339))
			}
			if c.Fix != "" && c.Result != resultOK {
				fmt.Fprintf(w, "  %-6s %-13s fix: %s\n", "", "", c.Fix)
			}
			if a := c.Agent; a != nil {
				fmt.Fprintf(w, "  %-6s %-13s the agent's probe, from its cluster: [%s] %s: %s (since %s)\n", "", "", a.Result, a.Reason, a.Message, ago(r.now, a.Since))
			}
		}
		if l.Failing == "" {
			fmt.Fprintln(w, "=> every check passed")
			continue
		}
		for _, c := range l.Checks {
			if c.Name == l.Failing {
				fmt.Fprintf(w, "=> %s fails: %s\n", c.Name, c.Item)
			}
		}
	}
	return nil
}
