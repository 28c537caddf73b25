package importer

import (
	"context"
	"crypto/x509"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/eck"
	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/kube"
	"github.com/ecklink/ecklink/agent/license"
	"github.com/ecklink/ecklink/agent/peering"
	"github.com/ecklink/ecklink/agent/transporttrust"
	"github.com/ecklink/ecklink/agent/wiring"
	"github.com/ecklink/ecklink/internal/pemutil"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// The certificate security model, local side. The import request carries the local
// Elasticsearch's own transport CA (for the remote to trust); the answer carries the remote's
// transport CA and its exposed transport address. The remote CA joins the local Elasticsearch's
// transport trust (transporttrust: the ConfigMap named by spec.transport.tls.certificateAuthorities,
// joined or created and wired), and cluster.remote.<alias> points at the transport port in proxy
// mode, with no credentials: without cluster.remote.<alias>.credentials in its keystore,
// Elasticsearch dials with its transport TLS profile, presenting its transport certificate.
//
// Only a RemoteCluster whose spec.model is certificate gets here (modelOf, linkPlan.applied): a
// peer cannot put its CA into this cluster's transport trust by answering with that model.
//
// The owner entries of the transport CA ConfigMap record which remote CAs this half added for
// which alias; which aliases' settings the agent created is recorded apart, in its own namespace
// (aliases.go), for both halves: a link that changes model keeps its alias recorded, and the
// half it leaves only lets go of its trust.

// certState is what the certificate pass of one reconcile learned.
type certState struct {
	// owned are the aliases with trust in the transport CA ConfigMap after the pass.
	owned map[string]bool
	// configMap holds the transport CAs; wired says whether the Elasticsearch names it.
	configMap string
	wired     bool
	// snippet is the wiring to commit (manual).
	snippet string
}

// certificateModel is the certificate security model, local side (see above).
type certificateModel struct{}

var _ securityModel = certificateModel{}

func (certificateModel) name() v1alpha1.SecurityModel { return v1alpha1.SecurityModelCertificate }
func (certificateModel) wire() peerv1.SecurityModel {
	return peerv1.SecurityModel_SECURITY_MODEL_CERTIFICATE
}

// sharesCA is false: its CA joins the transport trust, through the full reconcile only.
func (certificateModel) sharesCA() bool { return false }

// deprecated: RemoteClusters using it carry the SecurityModelCurrent warning.
func (certificateModel) deprecated() bool { return true }

// license: cross-cluster search needs no paid license with this model.
func (certificateModel) license() (license.Model, bool) { return "", false }

// request carries the local Elasticsearch's own transport CA: only a certificate-model export
// trusts it, and needs it before it can answer.
func (certificateModel) request(im *Importer, p *linkPlan, req *peerv1.ImportRequest) {
	req.TransportCaBundle = im.localTransportCA(p.id.Namespace, p.id.Elasticsearch)
}

func (certificateModel) validate(c *peerv1.Credentials, now time.Time) error {
	return validateCertificate(c, now)
}

func (certificateModel) apply(ctx context.Context, im *Importer, pass *modelPass) (time.Duration, error) {
	return im.applyCertificate(ctx, pass.es, pass.links, pass.held, pass.st, pass.client)
}

// releaseOrphaned removes this half's entries from ecklink's transport CA ConfigMap.
func (certificateModel) releaseOrphaned(ctx context.Context, im *Importer, ns, es string) error {
	return im.releaseOrphanedTrust(ctx, ns, es)
}

// report drops status.apiKey: no key is in effect.
func (certificateModel) report(_ *Importer, rc *v1alpha1.RemoteCluster, _ *linkPlan, _ *state) {
	rc.Status.APIKey = nil
}

const importOwnerPrefix = "import/"

func importOwner(alias string) string { return importOwnerPrefix + alias }

func (im *Importer) trustStore() *transporttrust.Store {
	return &transporttrust.Store{Kube: im.cfg.Kube, Editor: im.editor(), Now: im.cfg.Now}
}

// editor is the importer's writer of Elasticsearch resources (built on demand: it holds no state,
// and tests build Importers without New).
func (im *Importer) editor() *wiring.Editor { return wiring.NewEditor(im.cfg.Dynamic, im.log) }

// localTransportCA is the local Elasticsearch's own transport CA, sent in every import request:
// the remote adds it to its transport trust if its export uses the certificate model. Only the
// first certificate of <es>-es-transport-certs-public, never the CAs of peers that follow it.
func (im *Importer) localTransportCA(ns, es string) []byte {
	s, ok := im.cfg.Cache.ECKSecret(ns, eck.TransportCertsPublic(es))
	if !ok {
		return nil
	}
	own, err := transporttrust.OwnCA(s.Data["ca.crt"], im.cfg.Now())
	if err != nil {
		return nil
	}
	return own
}

// registerTransportCAHandler re-publishes the import requests of a local Elasticsearch when ECK
// rotates its transport CA, so that the remote trusts the new CA before the old one expires,
// and reconciles it when ECK writes its file-based settings, so that a key that reached them is
// found without waiting for the next check.
func (im *Importer) registerTransportCAHandler() error {
	return im.cfg.Cache.OnECKSecret(func(s *corev1.Secret) {
		es, ok := eck.OfTransportCertsPublic(s.Name)
		if !ok {
			// ECK wrote file-based settings: a key may have reached them (hotreload.go).
			if es, ok = eck.OfFileSettingsSecret(s.Name); !ok {
				return
			}
		}
		if len(im.cfg.Cache.RemoteClustersSharedOf(s.Namespace, es)) > 0 {
			im.enqueue(types.NamespacedName{Namespace: s.Namespace, Name: es}, trigTransport)
		}
	})
}

// validateCertificate checks certificate-model credentials before anything is applied.
func validateCertificate(c *peerv1.Credentials, now time.Time) error {
	if c.GetApiKeyId() != "" || c.GetApiKeyEncoded() != "" || c.GetApiKeyExpiration() != nil {
		return &peering.RefusalError{Reason: "InvalidCredentials", Message: "certificate-model credentials carry no API key"}
	}
	// The CA joins the transport trust: one self-signed CA, the remote's own root, nothing more.
	if _, err := pemutil.ValidateSelfSignedCA(c.GetCaBundle(), now, pemutil.DefaultLimits); err != nil {
		return &peering.RefusalError{Reason: "InvalidCA", Message: "ca_bundle of certificate-model credentials must be exactly one self-signed CA certificate: " + err.Error()}
	}
	host, port, err := net.SplitHostPort(c.GetProxyAddress())
	if err != nil || host == "" || len(host) > 253 {
		return &peering.RefusalError{Reason: "InvalidAddress", Message: fmt.Sprintf("proxy_address %q is not host:port", c.GetProxyAddress())}
	}
	if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
		return &peering.RefusalError{Reason: "InvalidAddress", Message: fmt.Sprintf("proxy_address %q has no valid port", c.GetProxyAddress())}
	}
	if sn := c.GetServerName(); sn != "" && !serverName.MatchString(sn) {
		return &peering.RefusalError{Reason: "InvalidServerName", Message: fmt.Sprintf("server_name %q is not a DNS name", sn)}
	}
	return nil
}

// applyCertificate runs before the API-key half (apply): it adds the remote transport CAs of the
// links on the certificate model and configures them, and lets go of the trust of links that left
// it (their settings went before, in releaseAliases, or stay for the API-key half). An
// Elasticsearch with no certificate-model link costs one read of its transport CA ConfigMap and
// no Elasticsearch call.
func (im *Importer) applyCertificate(ctx context.Context, es *unstructured.Unstructured, certs, held map[string]*linkPlan, st *state, esClient func() (*elastic.Client, error)) (time.Duration, error) {
	ns, esName := es.GetNamespace(), es.GetName()
	st.cert = certState{owned: map[string]bool{}}
	if len(certs) == 0 && im.noTransportTrust(es) {
		// No certificate-model link and nothing of ecklink's in the transport trust (the
		// informer cache says so): no read at all.
		st.cert.configMap = wiring.TransportCAConfigMapName(esName)
		return 0, nil
	}
	store := im.trustStore()
	cur, err := store.Read(ctx, es)
	if err != nil {
		return 0, err
	}
	st.cert.configMap, st.cert.wired = cur.ConfigMap, cur.Wired
	for owner := range cur.Owners {
		if alias, ok := strings.CutPrefix(owner, importOwnerPrefix); ok {
			st.cert.owned[alias] = true
		}
	}
	if len(certs) == 0 && len(st.cert.owned) == 0 {
		if cur.Leftover(es) {
			// A removal cut short (e.g. a conflict on the resource): finish it.
			// Nothing of ours is added, so nothing to wire (Manual never edits).
			_, err := store.Apply(ctx, es, nil, wiring.Manual)
			return 0, err
		}
		return 0, nil
	}
	client, current, err := st.clientAndSettings(ctx, esClient)
	if err != nil {
		return 0, err
	}
	want := map[string][]*x509.Certificate{}

	// 1. Aliases no longer on this model: their trust goes (their settings went before, in
	// releaseAliases, unless the API-key half now uses them).
	for _, alias := range slices.Sorted(maps.Keys(st.cert.owned)) {
		if certs[alias] != nil || held[alias] != nil {
			continue
		}
		want[importOwner(alias)] = nil
	}

	// 2. The remote transport CA of each link of this model, added before its settings.
	for alias, p := range certs {
		if _, exists := current[alias]; exists && !st.aliases.has(alias) {
			st.link(alias).userAlias = true
			continue
		}
		cas, err := pemutil.ParseCertificates(p.answer.creds.GetCaBundle(), pemutil.DefaultLimits)
		if err != nil {
			return 0, fmt.Errorf("failed to read the CA bundle of alias %s: %w", alias, err)
		}
		want[importOwner(alias)] = cas
	}
	res, err := store.Apply(ctx, es, want, st.mode)
	if err != nil {
		return 0, err
	}
	st.cert.owned = map[string]bool{}
	for owner, cas := range res.Owners {
		if alias, ok := strings.CutPrefix(owner, importOwnerPrefix); ok {
			st.cert.owned[alias] = true
			if p := certs[alias]; p != nil {
				p.transportCA = pemutil.EncodeBundle(cas)
			}
		}
	}
	st.cert.configMap, st.cert.wired, st.cert.snippet = res.ConfigMap, res.Wired, res.Snippet
	for owner, certs := range want {
		if certs != nil {
			continue
		}
		im.log.Info("remote transport CA removed from the transport trust", "elasticsearch", ns+"/"+esName, "alias", strings.TrimPrefix(owner, importOwnerPrefix))
	}

	// 3. Proxy-mode settings to the remote's transport port, once ECK reads the ConfigMap.
	if res.Wired {
		if err := im.applyCertSettings(ctx, client, ns, esName, certs, st, current); err != nil {
			return 0, err
		}
	}

	// 4. What ECK made of it, and whether Elasticsearch connects.
	return im.verifyCertificate(ctx, client, ns, esName, certs, st)
}

// applyCertSettings configures proxy-mode settings to each certificate-model remote's transport
// port, once ECK reads the ConfigMap, with one write for the aliases that changed
// (writeProxySettings). No credentials: the transport certificates authenticate the connection.
func (im *Importer) applyCertSettings(ctx context.Context, client *elastic.Client, ns, esName string, certs map[string]*linkPlan, st *state, current map[string]elastic.RemoteSettings) error {
	var mine []string
	for _, alias := range slices.Sorted(maps.Keys(certs)) {
		if !st.link(alias).userAlias {
			mine = append(mine, alias)
		}
	}
	return im.writeProxySettings(ctx, client, ns, esName, v1alpha1.SecurityModelCertificate, mine, certs, current, st)
}

// verifyCertificate records whether ECK put each remote CA into the nodes' transport trust and
// whether Elasticsearch connects, asking to come back soon while a link does not.
func (im *Importer) verifyCertificate(ctx context.Context, client *elastic.Client, ns, esName string, certs map[string]*linkPlan, st *state) (time.Duration, error) {
	var requeue time.Duration
	inECK := map[string]bool{}
	if s, ok := im.cfg.Cache.ECKSecret(ns, eck.TransportCertsPublic(esName)); ok {
		if all, err := pemutil.ParseCertificates(s.Data["ca.crt"], pemutil.Limits{}); err == nil {
			for _, c := range all {
				inECK[pemutil.Fingerprint(c)] = true
			}
		}
	}
	for _, p := range certs {
		cas, _ := pemutil.ParseCertificates(p.answer.creds.GetCaBundle(), pemutil.DefaultLimits)
		has := len(cas) > 0
		for _, c := range cas {
			has = has && inECK[pemutil.Fingerprint(c)]
		}
		p.caInECK = has
	}
	if len(certs) > 0 {
		if err := st.loadInfo(ctx, client); err != nil {
			return 0, err
		}
		for alias := range certs {
			if !st.link(alias).info.Connected {
				requeue = im.cfg.Pending
			}
		}
	}
	return requeue, nil
}

// releaseOrphanedTrust removes this half's entries from ecklink's transport CA ConfigMap of an
// Elasticsearch that is gone.
func (im *Importer) releaseOrphanedTrust(ctx context.Context, ns, es string) error {
	return im.trustStore().ReleaseOrphaned(ctx, ns, es, func(owner string) bool { return strings.HasPrefix(owner, importOwnerPrefix) })
}

// conditions are the link conditions of a certificate-model link: the remote CA in the
// transport trust and in ECK's transport certificates, no key, the settings.
func (certificateModel) conditions(p *linkPlan, st *state) []metav1.Condition {
	rc, alias := p.rc, p.id.Alias
	conds := &linkConds{rc: rc}
	add := conds.add
	es := rc.Spec.ElasticsearchRef.Name
	switch {
	case st.link(alias).userAlias:
		add(v1alpha1.ConditionTrustApplied, false, v1alpha1.ReasonAliasConflict, fmt.Sprintf(
			"cluster.remote.%s is already configured in Elasticsearch and not managed by ecklink: no trust was added", alias))
	case !st.cert.wired && st.cert.snippet != "":
		add(v1alpha1.ConditionTrustApplied, false, v1alpha1.ReasonManualWiringRequired,
			"wiring is manual: commit status.wiringSnippet to Elasticsearch "+es+" (spec.transport.tls.certificateAuthorities)")
	case !p.caInECK:
		add(v1alpha1.ConditionTrustApplied, false, v1alpha1.ReasonWaitingForECK, fmt.Sprintf(
			"remote transport CA written to ConfigMap %s; waiting for ECK to add it to %s", st.cert.configMap, eck.TransportCertsPublic(es)))
	default:
		add(v1alpha1.ConditionTrustApplied, true, v1alpha1.ReasonApplied, fmt.Sprintf(
			"remote transport CA in ConfigMap %s (spec.transport.tls.certificateAuthorities): trusted on the transport port", st.cert.configMap))
	}
	add(v1alpha1.ConditionCredentialsApplied, true, v1alpha1.ReasonCertificateModel,
		"certificate model: the transport certificates authenticate the connection, no API key")
	conds.settingsAndConnected(st, alias, "the transport port "+p.answer.creds.GetProxyAddress(),
		"waiting for the Elasticsearch resource to name the transport CA ConfigMap")
	return conds.out
}

// modelCondition warns on a RemoteCluster whose link uses a deprecated model (the certificate
// model), and drops the warning once it uses another.
func modelCondition(rc *v1alpha1.RemoteCluster, p *linkPlan) {
	if !p.desired() {
		return // no answer to go by: keep what was reported
	}
	if p.applied() && p.model.deprecated() {
		kube.Set(rc, kube.NewCondition(rc, v1alpha1.ConditionSecurityModelCurrent, metav1.ConditionFalse,
			v1alpha1.ReasonDeprecatedSecurityModel, v1alpha1.DeprecatedModelMessage))
		return
	}
	kube.Remove(rc, v1alpha1.ConditionSecurityModelCurrent)
}

// sooner is the shorter of two requeue delays, ignoring zero.
func sooner(a, b time.Duration) time.Duration {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	}
	return min(a, b)
}

// noTransportTrust reports whether the Elasticsearch names no transport CA ConfigMap and
// ecklink's own does not exist, from the informer cache: the certificate pass has nothing to do
// nor to clean up.
func (im *Importer) noTransportTrust(es *unstructured.Unstructured) bool {
	if wiring.TransportCAConfigMapOf(es) != "" || wiring.TransportCAWiredByUs(es) {
		return false
	}
	_, exists := im.cfg.Cache.OwnConfigMap(es.GetNamespace(), wiring.TransportCAConfigMapName(es.GetName()))
	return !exists
}
