package importer

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/license"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/peering"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// securityModel is one security model on the importing side: what a link's import request
// carries for it, which credentials it accepts, what its pass does to one local Elasticsearch,
// the conditions and status it reports, and what it lets go of when an Elasticsearch is gone.
// The importer picks one per link (modelOf, from the RemoteCluster's spec.model: plan gives each
// linkPlan its model and refuses an answer of another) and never asks which one it holds.
//
// The models hold no state of their own (what they apply lives in Kubernetes objects and in the
// pass's state), so they are plain values that the functions taking only a wire value (the CA
// path, the shared bundles) can look up too.
type securityModel interface {
	// name is the model as RemoteCluster spec.model names it; wire as import requests and
	// credentials name it.
	name() v1alpha1.SecurityModel
	wire() peerv1.SecurityModel
	// request fills in what an import request of a link of this model carries for it.
	request(im *Importer, p *linkPlan, req *peerv1.ImportRequest)
	// validate checks credentials of this model before anything of them is kept (validateText
	// has bounded the free text of every model's).
	validate(c *peerv1.Credentials, now time.Time) error
	// sharesCA says whether its credentials may name a CA bundle shared between links (ca_ref,
	// exportca.go) and whether a change of their CA bundle alone takes the CA path (cafast.go):
	// both hold for a CA the remote cluster client alone trusts, not for a transport CA.
	sharesCA() bool
	// apply is the model's part of the pass over one local Elasticsearch: its links (applied)
	// and what it holds for links that left it. The passes run in the order of models.
	apply(ctx context.Context, im *Importer, pass *modelPass) (time.Duration, error)
	// conditions are the four link conditions of a link it applies (conditions has already
	// answered for a link without credentials to apply or an Elasticsearch that failed).
	conditions(p *linkPlan, st *state) []metav1.Condition
	// report sets the status fields of a link answered with the model (fillStatus has set those
	// every model shares).
	report(im *Importer, rc *v1alpha1.RemoteCluster, p *linkPlan, st *state)
	// deprecated says whether a RemoteCluster using it carries the SecurityModelCurrent warning.
	deprecated() bool
	// license is the model the LicenseSufficient condition judges the link's licenses for;
	// false: the model needs no license checked, and its links carry no such condition.
	license() (license.Model, bool)
	// releaseOrphaned removes what the model holds for an Elasticsearch that is gone.
	releaseOrphaned(ctx context.Context, im *Importer, ns, es string) error
}

// models are the security models this agent knows, in the order their passes run: the
// certificate model first, which lets go of the transport trust of links that left it and
// whose CAs must not be taken by the API-key pass for bundles of its own.
var models = []securityModel{certificateModel{}, apiKeyModel{}}

// modelOf is the security model of a RemoteCluster's link: the one its spec.model accepts,
// apiKey when unset.
func modelOf(rc *v1alpha1.RemoteCluster) securityModel {
	accepted := rc.Spec.AcceptedModel()
	for _, m := range models {
		if m.name() == accepted {
			return m
		}
	}
	return apiKeyModel{}
}

// modelOnWire is the security model credentials name, nil for none this agent knows.
func modelOnWire(w peerv1.SecurityModel) securityModel {
	for _, m := range models {
		if m.wire() == w {
			return m
		}
	}
	return nil
}

// sharesCA reports whether credentials of model w may share their CA bundle (securityModel.sharesCA).
func sharesCA(w peerv1.SecurityModel) bool {
	m := modelOnWire(w)
	return m != nil && m.sharesCA()
}

// answerModel is the security model of the link's answer, for the status and the model check
// (validated credentials always name one; apiKey otherwise, as agents of release 0.1.0 meant).
func answerModel(c *peerv1.Credentials) v1alpha1.SecurityModel {
	if m := modelOnWire(c.GetModel()); m != nil {
		return m.name()
	}
	return v1alpha1.SecurityModelAPIKey
}

// validate checks credentials before anything is applied, by the model they name.
func (im *Importer) validate(c *peerv1.Credentials) error {
	m := modelOnWire(c.GetModel())
	if m == nil {
		return &peering.RefusalError{Reason: "UnsupportedModel", Message: fmt.Sprintf("security model %s is not supported", c.GetModel())}
	}
	return m.validate(c, im.cfg.Now())
}

// modelPass is what one model's pass over a local Elasticsearch works on.
type modelPass struct {
	es *unstructured.Unstructured
	// plans are every RemoteCluster of the Elasticsearch; links the aliases the model applies
	// now; held the aliases that wait for their peer's first answer, whose state stays.
	plans       []*linkPlan
	links, held map[string]*linkPlan
	st          *state
	client      func() (*elastic.Client, error)
}

// modelNotAllowed refuses credentials of another security model than the RemoteCluster of the
// link accepts (spec.model): a peer cannot choose the model for this side, in particular not the
// certificate model, which would put its CA into this cluster's transport trust.
func (im *Importer) modelNotAllowed(peer string, id link.ID, c *peerv1.Credentials) *peering.RefusalError {
	var accepted v1alpha1.SecurityModel
	for _, rc := range im.cfg.Cache.RemoteClustersSharedOf(id.Namespace, id.Elasticsearch) {
		if rc.Spec.Alias == id.Alias && rc.Spec.Peer == peer {
			accepted = rc.Spec.AcceptedModel()
		}
	}
	got := answerModel(c)
	if c.GetModel() == peerv1.SecurityModel_SECURITY_MODEL_UNSPECIFIED || accepted == "" || got == accepted {
		return nil // validate refuses an unknown model; requested, a link nobody asks for
	}
	return &peering.RefusalError{Reason: v1alpha1.ReasonModelNotAllowed, Message: modelMessage(peer, got, accepted)}
}

// modelMessage says why credentials of model got were refused for a RemoteCluster accepting want.
func modelMessage(peer string, got, want v1alpha1.SecurityModel) string {
	return fmt.Sprintf("environment %s answered with the %s security model, which this RemoteCluster does not accept (spec.model %s): refused, nothing of it applied",
		peer, got, want)
}
