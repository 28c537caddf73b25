package ctl

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// defaultAgentNamespace is the namespace of the agent unless -n says otherwise (the README's
// install uses it).
const defaultAgentNamespace = "ecklink"

// newKubeFlags returns kubectl's connection flags (k8s.io/cli-runtime): --kubeconfig, --context,
// -n, --as, --as-group, --request-timeout, --server, --token, the certificate flags...
// --namespace names the agent's namespace, which defaults to ecklink rather than the context's.
func newKubeFlags() *genericclioptions.ConfigFlags {
	f := genericclioptions.NewConfigFlags(false)
	f.Namespace = ptr.To(defaultAgentNamespace)
	// agentctl uses no discovery, so no discovery cache.
	f.CacheDir = nil
	return f
}

// addKubeFlags registers the connection flags on the root command, with agentctl's wording
// where it differs from kubectl's.
func addKubeFlags(pf *pflag.FlagSet, f *genericclioptions.ConfigFlags) {
	f.AddFlags(pf)
	pf.Lookup("namespace").Usage = "namespace of the ecklink agent"
	pf.Lookup("context").Usage = "kubeconfig context of this environment (default: the current context)"
	pf.Lookup("kubeconfig").Usage = "kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)"
}

// peerKubeFlags are the connection flags of the other environment: its kubeconfig and context,
// with this invocation's impersonation and request timeout; the server, user and certificate
// flags describe this environment's API server only.
func peerKubeFlags(local *genericclioptions.ConfigFlags, kubeconfig, kubeContext string) *genericclioptions.ConfigFlags {
	f := genericclioptions.NewConfigFlags(false)
	f.CacheDir = nil
	f.KubeConfig, f.Context = ptr.To(kubeconfig), ptr.To(kubeContext)
	f.Impersonate, f.ImpersonateUID, f.ImpersonateGroup = local.Impersonate, local.ImpersonateUID, local.ImpersonateGroup
	f.Timeout = local.Timeout
	return f
}

// setVerbosity routes client-go's klog output to stderr at level v: 6 shows each API request,
// 8 their bodies (as kubectl -v). agentctl's own debug lines start at 4.
func setVerbosity(v int) error {
	if v <= 0 {
		return nil
	}
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	if err := fs.Set("v", strconv.Itoa(v)); err != nil {
		return fmt.Errorf("failed to set -v: %w", err)
	}
	return fs.Set("logtostderr", "true")
}

// debug writes a debug line to stderr at -v level or above.
func (g *globals) debug(level int, format string, args ...any) {
	if g.verbosity >= level {
		fmt.Fprintf(g.opts.Err, "debug: "+format+"\n", args...)
	}
}

// completeContexts completes kubeconfig context names (for --context and --peer-context).
func (g *globals) completeContexts(_ *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = ptr.Deref(g.kube.KubeConfig, "")
	cfg, err := rules.Load()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
	}
	var out []string
	for name := range cfg.Contexts {
		out = append(out, name)
	}
	slices.Sort(out)
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completePeers completes the Peer names of --context's agent (unpair).
func (g *globals) completePeers(cmd *cobra.Command, a []string, _ string) ([]string, cobra.ShellCompDirective) {
	return g.completeObjects(cmd, a, func(ctx context.Context, e *env) ([]string, error) {
		peers, err := e.crds.Peers().List(ctx, e.namespace, metav1.ListOptions{})
		var out []string
		for _, p := range peers {
			out = append(out, p.Name)
		}
		return out, err
	})
}

// completeRemoteClusters completes namespace/name of --context's RemoteClusters (doctor).
func (g *globals) completeRemoteClusters(cmd *cobra.Command, a []string, _ string) ([]string, cobra.ShellCompDirective) {
	return g.completeObjects(cmd, a, func(ctx context.Context, e *env) ([]string, error) {
		rcs, err := e.crds.RemoteClusters().List(ctx, metav1.NamespaceAll, metav1.ListOptions{})
		var out []string
		for _, rc := range rcs {
			out = append(out, rc.Namespace+"/"+rc.Name)
		}
		return out, err
	})
}

// completeObjects completes the first argument with the names list returns for --context's
// agent, sorted.
func (g *globals) completeObjects(cmd *cobra.Command, a []string, list func(ctx context.Context, e *env) ([]string, error)) ([]string, cobra.ShellCompDirective) {
	if len(a) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	e, err := g.local()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
	}
	out, err := list(completionContext(cmd), e)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
	}
	slices.Sort(out)
	return out, cobra.ShellCompDirectiveNoFileComp
}

func completionContext(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

// pluginName is the binary name kubectl runs for `kubectl ecklink` (krew installs agentctl
// under it).
const pluginName = "kubectl-ecklink"

// displayName is how help and completion name the command: "kubectl ecklink" when run as the
// kubectl plugin, else agentctl.
func displayName(argv0 string) string {
	if strings.TrimSuffix(filepath.Base(argv0), ".exe") == pluginName {
		return "kubectl ecklink"
	}
	return "agentctl"
}

// addCompletion registers dynamic completion: kubeconfig contexts for --context and
// --peer-context, Peers for unpair, RemoteClusters for doctor.
func (g *globals) addCompletion(root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Flags().Lookup("peer-context") != nil {
			_ = c.RegisterFlagCompletionFunc("peer-context", g.completeContexts)
		}
		switch c.Name() {
		case "unpair":
			c.ValidArgsFunction = g.completePeers
		case "doctor":
			c.ValidArgsFunction = g.completeRemoteClusters
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}
