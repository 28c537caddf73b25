package importer

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/eck"
	"github.com/ecklink/ecklink/agent/license"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/peering"
	"github.com/ecklink/ecklink/agent/wiring"
	"github.com/ecklink/ecklink/internal/peertext"
	"github.com/ecklink/ecklink/internal/pemutil"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// apiKeyModel is the API-key security model, local side: the peer's encoded key goes into the
// credentials Secret (a secure-settings source), its CA bundle into the CA ConfigMap that the
// remote cluster client alone trusts, and cluster.remote.<alias> points at the remote's
// remote-cluster port in proxy mode (reconcile.go's apply; effect.go and hotreload.go say when a
// key is in effect).
type apiKeyModel struct{}

var _ securityModel = apiKeyModel{}

func (apiKeyModel) name() v1alpha1.SecurityModel { return v1alpha1.SecurityModelAPIKey }
func (apiKeyModel) wire() peerv1.SecurityModel   { return peerv1.SecurityModel_SECURITY_MODEL_API_KEY }
func (apiKeyModel) sharesCA() bool               { return true }
func (apiKeyModel) deprecated() bool             { return false }

func (apiKeyModel) license() (license.Model, bool) { return license.ModelAPIKey, true }

// request carries a request to rotate the link's key now (rotatenow.go).
func (apiKeyModel) request(im *Importer, p *linkPlan, req *peerv1.ImportRequest) {
	req.KeyRotationRequest, req.KeyRotationInvalidateOld = im.rotationRequest(p.rc)
}

func (apiKeyModel) apply(ctx context.Context, im *Importer, pass *modelPass) (time.Duration, error) {
	return im.apply(ctx, pass.es, pass.plans, pass.links, pass.held, pass.st, pass.client)
}

// releaseOrphaned deletes the credentials Secret and the CA ConfigMap.
func (apiKeyModel) releaseOrphaned(ctx context.Context, im *Importer, ns, es string) error {
	return im.deleteOwn(ctx, ns, es)
}

// validate checks API-key credentials: the key, the CA bundle the remote cluster client trusts,
// the address and server name.
func (apiKeyModel) validate(c *peerv1.Credentials, now time.Time) error {
	if !link.ValidAPIKeyID(c.GetApiKeyId()) {
		return &peering.RefusalError{Reason: "InvalidAPIKey", Message: "api_key_id must be 1-64 URL-safe base64 characters"}
	}
	if enc := c.GetApiKeyEncoded(); enc != "" {
		raw, err := base64.StdEncoding.DecodeString(enc)
		if err != nil || len(enc) > 512 {
			return &peering.RefusalError{Reason: "InvalidAPIKey", Message: "api_key_encoded is not base64 of id:key"}
		}
		keyID, secret, ok := strings.Cut(string(raw), ":")
		if !ok || secret == "" || keyID != c.GetApiKeyId() {
			return &peering.RefusalError{Reason: "InvalidAPIKey", Message: "api_key_encoded does not hold api_key_id followed by a key"}
		}
	}
	// Credentials waiting for the shared bundle they name have none yet; it is checked when
	// it arrives (OnExportCA).
	if c.GetCaRef() == "" || len(c.GetCaBundle()) > 0 {
		if _, err := pemutil.ValidateCABundle(c.GetCaBundle(), now, pemutil.DefaultLimits); err != nil {
			return &peering.RefusalError{Reason: "InvalidCA", Message: err.Error()}
		}
	}
	host, port, err := net.SplitHostPort(c.GetProxyAddress())
	if err != nil || host == "" || len(host) > 253 {
		return &peering.RefusalError{Reason: "InvalidAddress", Message: fmt.Sprintf("proxy_address %q is not host:port", peertext.Clean(c.GetProxyAddress(), 260))}
	}
	if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
		return &peering.RefusalError{Reason: "InvalidAddress", Message: fmt.Sprintf("proxy_address %q has no valid port", peertext.Clean(c.GetProxyAddress(), 260))}
	}
	if sn := c.GetServerName(); sn != "" && !serverName.MatchString(sn) {
		return &peering.RefusalError{Reason: "InvalidServerName", Message: fmt.Sprintf("server_name %q is not a DNS name", peertext.Clean(sn, 253))}
	}
	return nil
}

// conditions are the link conditions of an API-key link: the CA ConfigMap and the wiring, the
// key in the keystore or the file-based settings and whether it is in effect, the settings.
func (apiKeyModel) conditions(p *linkPlan, st *state) []metav1.Condition {
	rc, alias := p.rc, p.id.Alias
	conds := &linkConds{rc: rc}
	add := conds.add
	cm := wiring.CAConfigMapName(rc.Spec.ElasticsearchRef.Name)
	switch {
	case !st.mode.Edits() && !st.wired && st.snippet != "": // wire ran and left a snippet to commit
		add(v1alpha1.ConditionTrustApplied, false, v1alpha1.ReasonManualWiringRequired,
			"wiring is "+st.mode.String()+": commit status.wiringSnippet to Elasticsearch "+rc.Spec.ElasticsearchRef.Name)
	default:
		add(v1alpha1.ConditionTrustApplied, true, v1alpha1.ReasonApplied, fmt.Sprintf(
			"remote CA in ConfigMap %s, trusted by the remote cluster client only", cm))
	}
	r := st.link(alias)
	keyID, effective := r.keyID, r.effectiveKey
	secret := wiring.CredentialsSecretName(rc.Spec.ElasticsearchRef.Name)
	switch {
	case r.missingKey:
		add(v1alpha1.ConditionCredentialsApplied, false, v1alpha1.ReasonWaitingForPeer, "waiting for the peer to send the key value again")
	case keyID != "" && effective == keyID && st.fileBased:
		add(v1alpha1.ConditionCredentialsApplied, true, v1alpha1.ReasonHotReloaded, fmt.Sprintf(
			"API key %s reloaded without a restart: ECK file-based secure settings (Secret %s, version %d applied)",
			keyID, eck.FileSettingsSecret(rc.Spec.ElasticsearchRef.Name), r.fileVersion))
	case keyID != "" && effective == keyID:
		add(v1alpha1.ConditionCredentialsApplied, true, v1alpha1.ReasonApplied, fmt.Sprintf("API key %s in the keystore (Secret %s), applied by a restart", keyID, secret))
	case st.fileBased:
		add(v1alpha1.ConditionCredentialsApplied, false, v1alpha1.ReasonElasticsearchReloading, hotReloadWait(st, alias, keyID, secret, rc.Spec.ElasticsearchRef.Name))
	default:
		add(v1alpha1.ConditionCredentialsApplied, false, v1alpha1.ReasonElasticsearchRestarting, fmt.Sprintf(
			"API key %s written to Secret %s; waiting for ECK to restart Elasticsearch with the new keystore", keyID, secret))
	}
	conds.settingsAndConnected(st, alias, p.answer.creds.GetProxyAddress(), "waiting for the Elasticsearch resource to be wired")
	return conds.out
}

// report sets status.apiKey: the key in effect, since when, its expiration and the rotation
// request it answers.
func (apiKeyModel) report(im *Importer, rc *v1alpha1.RemoteCluster, p *linkPlan, st *state) {
	c := p.answer.creds
	id := st.link(p.id.Alias).effectiveKey
	if id == "" {
		return
	}
	applied := &v1alpha1.AppliedAPIKey{ID: id}
	if prev := rc.Status.APIKey; prev != nil && prev.ID == id {
		applied.AppliedAt = prev.AppliedAt
	} else {
		applied.AppliedAt = &metav1.Time{Time: im.cfg.Now().Truncate(time.Second)}
	}
	if id == c.GetApiKeyId() && c.GetApiKeyExpiration() != nil {
		applied.Expiration = &metav1.Time{Time: c.GetApiKeyExpiration().AsTime().Truncate(time.Second).Local()} // as stored (RFC 3339) and read back
	}
	switch prev := rc.Status.APIKey; {
	case id == c.GetApiKeyId():
		applied.RotationRequest = c.GetKeyRotationRequest()
	case prev != nil && prev.ID == id:
		applied.RotationRequest = prev.RotationRequest
	}
	rc.Status.APIKey = applied
}
