package harness

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/kube"
	"github.com/ecklink/ecklink/agent/peertrust"
)

// Export creates a ClusterExport that grants search on names to peers, with proxyAddress.
func (c *Cluster) Export(ctx context.Context, ns, name, es, proxyAddress string, peers []string, mutate func(*v1alpha1.ClusterExport)) (*v1alpha1.ClusterExport, error) {
	exp := &v1alpha1.ClusterExport{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.ClusterExportSpec{
			ElasticsearchRef: v1alpha1.ElasticsearchReference{Name: es},
			Peers:            peers,
			Access:           &v1alpha1.CrossClusterAccess{Search: []v1alpha1.SearchAccess{{Names: []string{"logs-*"}}}},
			ProxyAddress:     proxyAddress,
		},
	}
	if mutate != nil {
		mutate(exp)
	}
	out, err := c.CRDs.ClusterExports().Create(ctx, exp)
	if err != nil {
		return nil, fmt.Errorf("failed to create ClusterExport %s/%s in %s: %w", ns, name, c.Name, err)
	}
	return out, nil
}

// Import creates a RemoteCluster of local Elasticsearch es under alias, from peer's export.
func (c *Cluster) Import(ctx context.Context, ns, name, es, alias, peer, exportNS, exportName string, mutate func(*v1alpha1.RemoteCluster)) (*v1alpha1.RemoteCluster, error) {
	rc := &v1alpha1.RemoteCluster{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.RemoteClusterSpec{
			ElasticsearchRef: v1alpha1.ElasticsearchReference{Name: es},
			Alias:            alias,
			Peer:             peer,
			Export:           v1alpha1.ExportReference{Namespace: exportNS, Name: exportName},
		},
	}
	if mutate != nil {
		mutate(rc)
	}
	out, err := c.CRDs.RemoteClusters().Create(ctx, rc)
	if err != nil {
		return nil, fmt.Errorf("failed to create RemoteCluster %s/%s in %s: %w", ns, name, c.Name, err)
	}
	return out, nil
}

// WaitRemoteCluster polls a RemoteCluster until ok accepts it.
func (c *Cluster) WaitRemoteCluster(ctx context.Context, ns, name string, within time.Duration, ok func(*v1alpha1.RemoteCluster) bool) (*v1alpha1.RemoteCluster, error) {
	deadline := time.Now().Add(within)
	var last *v1alpha1.RemoteCluster
	for {
		rc, err := c.CRDs.RemoteClusters().Get(ctx, ns, name)
		if err == nil {
			last = rc
			if ok(rc) {
				return rc, nil
			}
		}
		if time.Now().After(deadline) {
			return last, fmt.Errorf("RemoteCluster %s/%s in %s: condition not met within %s; status: %s", ns, name, c.Name, within, DescribeConditions(last))
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Condition returns a condition of an object, or nil.
func Condition(obj kube.Conditioned, t string) *metav1.Condition {
	for _, c := range obj.GetConditions() {
		if c.Type == t {
			return &c
		}
	}
	return nil
}

// HasCondition reports whether obj has condition t with status s.
func HasCondition(obj kube.Conditioned, t string, s metav1.ConditionStatus) bool {
	c := Condition(obj, t)
	return c != nil && c.Status == s
}

// DescribeConditions renders an object's conditions for test failures.
func DescribeConditions(obj kube.Conditioned) string {
	if obj == nil {
		return "<none>"
	}
	out := ""
	for _, c := range obj.GetConditions() {
		out += fmt.Sprintf("\n  %s=%s %s: %s", c.Type, c.Status, c.Reason, c.Message)
	}
	return out
}

// PeerTrust returns the agent CA bundle c's agent trusts for peer env now: the one it learnt
// over the stream (its trust Secret), or the Peer's spec.caBundle.
func (c *Cluster) PeerTrust(ctx context.Context, env string) (string, error) {
	p, err := c.CRDs.Peers().Get(ctx, AgentNamespace, env)
	if err != nil {
		return "", err
	}
	store, err := peertrust.New(c.Env.Kube, AgentNamespace, nil)
	if err != nil {
		return "", err
	}
	tr, err := store.Effective(ctx, p)
	return string(tr.Bundle), err
}
