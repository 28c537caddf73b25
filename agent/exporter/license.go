package exporter

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/kube"
	"github.com/ecklink/ecklink/agent/license"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/peering"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// The license preflight of the remote side (agent/license has the facts): the exported
// Elasticsearch's license (GET /_license, cached) and the consuming one's, which the peer's
// agent sends in its import request (unset by agents before 0.2: then unknown, never refused).
// A link that no key serves yet is refused while a known license does not allow the API-key
// model, so no key is created that Elasticsearch would refuse to use (with a license below
// enterprise the create API itself answers 403); a link that holds a key keeps it, so a
// license that lapses and is renewed costs no key and no restart of the consumer, and the
// conditions say what is missing meanwhile.

// Timings of the license cache: a license changes rarely, and a failed read (the agent's user
// not in effect yet, an outage) is tried again soon.
const (
	licenseTTL   = 2 * time.Minute
	licenseRetry = 20 * time.Second
)

// exportedLicense returns the license of the exported Elasticsearch, unknown when it cannot be
// read.
func (e *Exporter) exportedLicense(ctx context.Context, target elastic.Target) license.License {
	lic, err := e.licenses.Of(ctx, target, e.cfg.Elastic)
	if err != nil {
		e.log.Debug("failed to read the license", "elasticsearch", target.Namespace+"/"+target.Name, "error", err)
	}
	return lic
}

// licenseVerdict judges a link of the API-key model between the exported Elasticsearch and the
// consuming one, and records it for the export's LicenseSufficient condition.
// A verdict that turns insufficient makes one Warning Event on the export.
func (e *Exporter) licenseVerdict(ctx context.Context, exp *v1alpha1.ClusterExport, peer string, id link.ID, req *peerv1.ImportRequest, target elastic.Target, st *linkState) (license.License, license.Verdict) {
	exported := e.exportedLicense(ctx, target)
	// Validated on receipt (validateImport): an invalid one never gets here.
	consuming, _ := license.FromProto(req.GetElasticsearchLicense())
	v := license.Check(license.ModelAPIKey,
		license.Cluster{Name: fmt.Sprintf("the exported Elasticsearch %s/%s (environment %s)", target.Namespace, target.Name, e.cfg.Environment), License: exported},
		license.Cluster{Name: fmt.Sprintf("the consuming Elasticsearch %s/%s (environment %s)", id.Namespace, id.Elasticsearch, peer), License: consuming})
	e.mu.Lock()
	changed := st.license != v
	st.license = v
	export := st.export
	e.mu.Unlock()
	if changed {
		e.refreshExport(export)
		if !v.Sufficient {
			e.log.Warn("license does not allow the link", "peer", peer, "link", id.String(), "verdict", v.Message)
			e.cfg.Recorder.Event(exp, corev1.EventTypeWarning, v1alpha1.ReasonLicenseInsufficient,
				fmt.Sprintf("link %s of environment %s: %s", id, peer, v.Message))
		}
	}
	return exported, v
}

// licenseRefusal refuses a link that holds no key while a license does not allow it.
func (e *Exporter) licenseRefusal(v license.Verdict, st *linkState) *peering.RefusalError {
	e.mu.Lock()
	// A key is held when one was sent, or when the consumer reports one (after a restart of
	// this agent, before its first answer).
	held := st.keyID != "" || st.status.GetWrittenApiKeyId() != "" || st.status.GetAppliedApiKeyId() != ""
	e.mu.Unlock()
	if v.Sufficient || held {
		return nil
	}
	return &peering.RefusalError{Reason: v1alpha1.ReasonLicenseInsufficient, Message: v.Message}
}

// licenseCondition is the export's LicenseSufficient condition: False naming the clusters of
// the links whose licenses do not allow them, or the exported cluster alone; Unknown while the
// exported cluster's license cannot be read.
func (e *Exporter) licenseCondition(ctx context.Context, exp *v1alpha1.ClusterExport) metav1.Condition {
	target := elastic.Target{Namespace: exp.Namespace, Name: exp.Spec.ElasticsearchRef.Name}
	own := license.Check(license.ModelAPIKey, license.Cluster{
		Name: fmt.Sprintf("the exported Elasticsearch %s/%s (environment %s)", target.Namespace, target.Name, e.cfg.Environment), License: e.exportedLicense(ctx, target)})
	ref := exp.Namespace + "/" + exp.Name
	var bad []string
	e.mu.Lock()
	for peer, links := range e.links {
		for id, st := range links {
			if st.export == ref && !st.removed && !st.license.Sufficient && st.license.Message != "" {
				bad = append(bad, fmt.Sprintf("link %s of %s: %s", id, peer, st.license.Message))
			}
		}
	}
	e.mu.Unlock()
	sort.Strings(bad)
	switch {
	case !own.Sufficient:
		return kube.NewCondition(exp, v1alpha1.ConditionLicenseSufficient, metav1.ConditionFalse, v1alpha1.ReasonLicenseInsufficient, own.Message)
	case len(bad) > 0:
		msg := bad[0]
		if len(bad) > 1 {
			msg = fmt.Sprintf("%s (and %d more links)", msg, len(bad)-1)
		}
		return kube.NewCondition(exp, v1alpha1.ConditionLicenseSufficient, metav1.ConditionFalse, v1alpha1.ReasonLicenseInsufficient, clip(msg, maxLinkMessage))
	case own.Unknown:
		return kube.NewCondition(exp, v1alpha1.ConditionLicenseSufficient, metav1.ConditionUnknown, v1alpha1.ReasonLicenseUnknown, own.Message)
	}
	return kube.NewCondition(exp, v1alpha1.ConditionLicenseSufficient, metav1.ConditionTrue, v1alpha1.ReasonLicenseSufficient,
		own.Message+"; consuming clusters are checked per link")
}

// refreshExport queues the status of export "namespace/name" alone.
func (e *Exporter) refreshExport(ref string) {
	if ns, name, ok := strings.Cut(ref, "/"); ok {
		e.queue.Add(item{kind: "export", ns: ns, name: name})
	}
}
