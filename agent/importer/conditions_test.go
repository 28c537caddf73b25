package importer

import (
	"errors"
	"fmt"
	"testing"

	"github.com/hashicorp/go-hclog"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/wiring"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// TestLinkConditions: every reason the four link conditions can carry, from what a reconcile
// learnt (the API-key model).
func TestLinkConditions(t *testing.T) {
	im := &Importer{log: hclog.NewNullLogger()}
	rc := &v1alpha1.RemoteCluster{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "west-logs"},
		Spec: v1alpha1.RemoteClusterSpec{ElasticsearchRef: v1alpha1.ElasticsearchReference{Name: "ccs"}, Alias: "west-logs", Peer: "west",
			Export: v1alpha1.ExportReference{Namespace: "data", Name: "logs"}}}
	id := link.ID{Namespace: "apps", Elasticsearch: "ccs", Alias: "west-logs"}
	creds := &received{peer: "west", creds: &peerv1.Credentials{ApiKeyId: "k2", ProxyAddress: "logs.west:9443", Model: peerv1.SecurityModel_SECURITY_MODEL_API_KEY}}
	ready := func() *state {
		return &state{esFound: true, wired: true, links: map[string]*linkResult{"west-logs": {settingsApplied: true,
			hasKey: true, keyID: "k2", effectiveKey: "k2", info: elastic.RemoteInfo{Connected: true}}}}
	}
	with := func(f func(*state)) *state { st := ready(); f(st); return st }
	type want map[string]string // condition type -> reason
	all := func(reason string) want {
		return want{v1alpha1.ConditionTrustApplied: reason, v1alpha1.ConditionCredentialsApplied: reason, v1alpha1.ConditionSettingsApplied: reason, v1alpha1.ConditionConnected: reason}
	}
	for _, tc := range []struct {
		name string
		plan linkPlan
		st   *state
		want want
	}{
		{"connected", linkPlan{answer: creds}, ready(), want{v1alpha1.ConditionTrustApplied: v1alpha1.ReasonApplied, v1alpha1.ConditionCredentialsApplied: v1alpha1.ReasonApplied,
			v1alpha1.ConditionSettingsApplied: v1alpha1.ReasonApplied, v1alpha1.ConditionConnected: v1alpha1.ReasonRemoteConnected}},
		{"alias taken by another RemoteCluster", linkPlan{answer: creds, conflict: "RemoteCluster apps/other holds the alias"}, ready(), all(v1alpha1.ReasonAliasConflict)},
		{"no Peer", linkPlan{peerGone: true}, ready(), all(v1alpha1.ReasonPeerNotFound)},
		{"no answer yet", linkPlan{}, ready(), all(v1alpha1.ReasonWaitingForPeer)},
		{"refused", linkPlan{answer: &received{peer: "west", refusal: &peerv1.Refusal{Reason: v1alpha1.ReasonPeerNotGranted, Message: "no"}}}, ready(), all(v1alpha1.ReasonPeerNotGranted)},
		{"withdrawn", linkPlan{answer: &received{peer: "west", removed: true}}, ready(), all(v1alpha1.ReasonWaitingForPeer)},
		{"no Elasticsearch", linkPlan{answer: creds}, with(func(s *state) { s.esFound = false }), all(v1alpha1.ReasonElasticsearchNotFound)},
		{"Elasticsearch down", linkPlan{answer: creds}, with(func(s *state) { s.esError, s.esReason = "timeout", v1alpha1.ReasonElasticsearchUnavailable }), all(v1alpha1.ReasonElasticsearchUnavailable)},
		{"manual wiring pending", linkPlan{answer: creds}, with(func(s *state) {
			s.mode, s.wired, s.snippet = wiring.Manual, false, "spec: ..."
			s.link("west-logs").settingsApplied = false
		}),
			want{v1alpha1.ConditionTrustApplied: v1alpha1.ReasonManualWiringRequired, v1alpha1.ConditionSettingsApplied: v1alpha1.ReasonReconciling}},
		{"key written, not in effect", linkPlan{answer: creds}, with(func(s *state) { s.link("west-logs").effectiveKey = "k1" }),
			want{v1alpha1.ConditionCredentialsApplied: v1alpha1.ReasonElasticsearchRestarting}},
		{"hot reload: key in effect", linkPlan{answer: creds}, with(func(s *state) { s.fileBased = true }),
			want{v1alpha1.ConditionCredentialsApplied: v1alpha1.ReasonHotReloaded}},
		{"hot reload: waiting for Elasticsearch", linkPlan{answer: creds}, with(func(s *state) { s.fileBased, s.link("west-logs").effectiveKey = true, "k1" }),
			want{v1alpha1.ConditionCredentialsApplied: v1alpha1.ReasonElasticsearchReloading}},
		{"key value lost", linkPlan{answer: creds}, with(func(s *state) { s.link("west-logs").missingKey = true }), want{v1alpha1.ConditionCredentialsApplied: v1alpha1.ReasonWaitingForPeer}},
		{"alias configured by someone else", linkPlan{answer: creds}, with(func(s *state) { s.link("west-logs").userAlias = true }), want{v1alpha1.ConditionSettingsApplied: v1alpha1.ReasonAliasConflict}},
		{"not connected", linkPlan{answer: creds}, with(func(s *state) { s.link("west-logs").info = elastic.RemoteInfo{} }), want{v1alpha1.ConditionConnected: v1alpha1.ReasonRemoteNotConnected}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.plan
			p.rc, p.id, p.model = rc, id, modelOf(rc)
			wantReasons(t, im, &p, tc.st, tc.want)
		})
	}
}

// TestApplyFailure: the reasons of a failed apply, by what Elasticsearch answered.
func TestApplyFailure(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&elastic.APIError{Status: 503, Type: "unavailable_shards_exception"}, v1alpha1.ReasonElasticsearchUnavailable},
		{&elastic.APIError{Status: 401, Type: "security_exception"}, v1alpha1.ReasonElasticsearchUserPending},
		{fmt.Errorf("x: %w", elastic.ErrUserNotProvisioned), v1alpha1.ReasonElasticsearchUserPending},
		{&elastic.APIError{Status: 403, Type: "security_exception"}, v1alpha1.ReasonElasticsearchForbidden},
		{&elastic.APIError{Status: 400, Type: "illegal_argument_exception"}, v1alpha1.ReasonApplyFailed},
		{errors.New("conflict writing the Secret"), v1alpha1.ReasonApplyFailed},
	} {
		if got := applyFailure(tc.err); got != tc.want {
			t.Errorf("applyFailure(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}

// TestCertLinkConditions: every reason the link conditions of a certificate-model link carry.
func TestCertLinkConditions(t *testing.T) {
	im := &Importer{log: hclog.NewNullLogger()}
	rc := &v1alpha1.RemoteCluster{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "west-logs"},
		Spec: v1alpha1.RemoteClusterSpec{ElasticsearchRef: v1alpha1.ElasticsearchReference{Name: "ccs"}, Alias: "west-logs", Peer: "west",
			Export: v1alpha1.ExportReference{Namespace: "data", Name: "logs"}, Model: v1alpha1.SecurityModelCertificate}}
	id := link.ID{Namespace: "apps", Elasticsearch: "ccs", Alias: "west-logs"}
	creds := &received{peer: "west", creds: &peerv1.Credentials{ProxyAddress: "logs.west:9300", Model: peerv1.SecurityModel_SECURITY_MODEL_CERTIFICATE}}
	ready := func() *state {
		return &state{esFound: true, links: map[string]*linkResult{"west-logs": {settingsApplied: true, info: elastic.RemoteInfo{Connected: true}}},
			cert: certState{wired: true, configMap: "ccs-ecklink-transport-cas"}}
	}
	with := func(f func(*state)) *state { st := ready(); f(st); return st }
	type want map[string]string
	for _, tc := range []struct {
		name     string
		st       *state
		notInECK bool // ECK has not copied the remote CA into the transport certificates yet
		want     want
	}{
		{"connected", ready(), false, want{v1alpha1.ConditionTrustApplied: v1alpha1.ReasonApplied, v1alpha1.ConditionCredentialsApplied: v1alpha1.ReasonCertificateModel,
			v1alpha1.ConditionSettingsApplied: v1alpha1.ReasonApplied, v1alpha1.ConditionConnected: v1alpha1.ReasonRemoteConnected}},
		{"ECK has not copied the CA yet", ready(), true, want{v1alpha1.ConditionTrustApplied: v1alpha1.ReasonWaitingForECK}},
		{"manual wiring", with(func(s *state) {
			s.cert.wired, s.cert.snippet = false, "spec: ..."
			s.link("west-logs").settingsApplied = false
		}), false,
			want{v1alpha1.ConditionTrustApplied: v1alpha1.ReasonManualWiringRequired, v1alpha1.ConditionSettingsApplied: v1alpha1.ReasonReconciling}},
		{"alias configured by someone else", with(func(s *state) { s.link("west-logs").userAlias = true }), false,
			want{v1alpha1.ConditionTrustApplied: v1alpha1.ReasonAliasConflict, v1alpha1.ConditionSettingsApplied: v1alpha1.ReasonAliasConflict}},
		{"not connected", with(func(s *state) { s.link("west-logs").info = elastic.RemoteInfo{} }), false, want{v1alpha1.ConditionConnected: v1alpha1.ReasonRemoteNotConnected}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := linkPlan{answer: creds, rc: rc, id: id, model: modelOf(rc), caInECK: !tc.notInECK}
			wantReasons(t, im, &p, tc.st, tc.want)
		})
	}
}

// wantReasons fails t unless the conditions im sets for p over st carry, by type, the reasons of
// want (other types are not checked).
func wantReasons(t *testing.T, im *Importer, p *linkPlan, st *state, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	for _, c := range im.conditions(p, st) {
		got[c.Type] = c.Reason
	}
	for typ, reason := range want {
		if got[typ] != reason {
			t.Errorf("%s reason %q, want %q (all: %v)", typ, got[typ], reason, got)
		}
	}
}
