package importer

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/kube"
	"github.com/ecklink/ecklink/agent/license"
)

// The license preflight of the local side (agent/license has the facts): the local
// Elasticsearch's license (GET /_license, cached) goes to the peer in each import request, so
// that the exporter creates no key a license would make useless, and the RemoteCluster's
// LicenseSufficient condition judges both licenses: the local one and the one the peer sent
// with its credentials (unset by agents before 0.2, then unknown), for the link's model
// (securityModel.license). The certificate model needs no license for cross-cluster search, so
// its links get no condition.

// localLicense returns the license of the local Elasticsearch ns/es, unknown when it cannot be
// read (e.g. the agent's user is not in effect yet).
func (im *Importer) localLicense(ctx context.Context, ns, es string) license.License {
	lic, err := im.licenses.Of(ctx, elastic.Target{Namespace: ns, Name: es}, im.cfg.Elastic)
	if err != nil {
		im.log.Debug("failed to read the license", "elasticsearch", ns+"/"+es, "error", err)
	}
	return lic
}

// licenseCondition is a RemoteCluster's LicenseSufficient condition; false when the link has
// none (a model that needs no license).
func licenseCondition(p *linkPlan, st *state) (metav1.Condition, bool) {
	rc := p.rc
	model, judged := p.model.license()
	if !judged {
		return metav1.Condition{}, false
	}
	if p.answer != nil && p.answer.refusal != nil && !p.answer.local && p.answer.refusal.GetReason() == v1alpha1.ReasonLicenseInsufficient {
		return kube.NewCondition(rc, v1alpha1.ConditionLicenseSufficient, metav1.ConditionFalse, v1alpha1.ReasonLicenseInsufficient,
			fmt.Sprintf("environment %s refused the link: %s", rc.Spec.Peer, p.answer.refusal.GetMessage())), true
	}
	clusters := []license.Cluster{{Name: fmt.Sprintf("the local Elasticsearch %s/%s", rc.Namespace, rc.Spec.ElasticsearchRef.Name), License: st.license}}
	if p.answer == nil || p.answer.refusal == nil {
		// A link refused for another reason gets no license of the remote: the local one is
		// judged alone.
		var remote license.License
		if p.answer != nil && p.answer.creds != nil && !p.answer.removed {
			// Validated on receipt (validateText).
			remote, _ = license.FromProto(p.answer.creds.GetElasticsearchLicense())
		}
		clusters = append(clusters, license.Cluster{Name: fmt.Sprintf("the Elasticsearch of ClusterExport %s/%s (environment %s)",
			rc.Spec.Export.Namespace, rc.Spec.Export.Name, rc.Spec.Peer), License: remote})
	}
	v := license.Check(model, clusters...)
	switch {
	case !v.Sufficient:
		return kube.NewCondition(rc, v1alpha1.ConditionLicenseSufficient, metav1.ConditionFalse, v1alpha1.ReasonLicenseInsufficient, v.Message), true
	case v.Unknown:
		return kube.NewCondition(rc, v1alpha1.ConditionLicenseSufficient, metav1.ConditionUnknown, v1alpha1.ReasonLicenseUnknown, v.Message), true
	}
	return kube.NewCondition(rc, v1alpha1.ConditionLicenseSufficient, metav1.ConditionTrue, v1alpha1.ReasonLicenseSufficient, v.Message), true
}

// setLicenseCondition sets (or removes) the LicenseSufficient condition and returns the
// conditions Ready is made of: a license that does not allow the link is named first, as the
// reason the rest cannot work.
func setLicenseCondition(rc *v1alpha1.RemoteCluster, p *linkPlan, st *state) []string {
	c, ok := licenseCondition(p, st)
	if !ok {
		kube.Remove(rc, v1alpha1.ConditionLicenseSufficient)
		return linkConditions
	}
	kube.Set(rc, c)
	if c.Status == metav1.ConditionFalse {
		return append([]string{v1alpha1.ConditionLicenseSufficient}, linkConditions...)
	}
	return linkConditions
}

// Timings of the license cache: a license changes rarely, and a failed read is tried again soon.
const (
	licenseTTL   = 2 * time.Minute
	licenseRetry = 20 * time.Second
)
