package importer

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/eck"
	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/esuser"
	"github.com/ecklink/ecklink/agent/license"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/wiring"
	"github.com/ecklink/ecklink/internal/failpoint"
	"github.com/ecklink/ecklink/internal/peertext"
	"github.com/ecklink/ecklink/internal/pemutil"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// state is what one reconcile learned, for the status of each RemoteCluster: of the
// Elasticsearch here, of each link in links.
type state struct {
	esFound  bool
	esError  string
	esReason string // condition reason of esError (applyFailure)
	wired    bool
	// mode is the wiring mode of the Elasticsearch, from its active RemoteClusters (wiringMode).
	mode wiring.Mode
	// userUnwired: the mode does not edit, and spec.auth does not name the agent's user yet.
	userUnwired bool
	snippet     string
	// links: alias -> what the pass learned of the link (link).
	links map[string]*linkResult
	cert  certState // the certificate-model pass (certmodel.go)
	// aliases are the aliases whose settings the agent created (aliases.go); only those are
	// ever removed, and an alias set by anyone else is a conflict.
	aliases *aliasRecord
	// signingPassRan: the strong-identity pass ran (signing.go), so each link's signingSubject
	// and signingWait say something; without it the StrongIdentity condition is kept as it is.
	signingPassRan bool
	// license is the local Elasticsearch's license, unknown when it could not be read.
	license license.License
	// fileBased: ECK delivers the secure settings through file-based settings and Elasticsearch
	// reloads them in place (hotreload.go); fileSettings is what Elasticsearch reported of them.
	fileBased    bool
	fileSettings *elastic.FileSettings
	// reads: the pass's reads of the remote cluster settings and _remote/info (esreads.go).
	reads esReads
	// parsed: the CA bundles of the links parsed, by content (the aliases to one remote share
	// one; the status, the LinkStatus and the metrics of each read it).
	parsed map[string]*parsedBundle
}

// linkResult is what one pass learned of one link (one alias of the Elasticsearch), for its
// status, its LinkStatus and its metrics. The zero value is a link the pass did nothing for.
type linkResult struct {
	settingsApplied bool // cluster.remote.<alias> is what the agent wants
	userAlias       bool // cluster.remote.<alias> configured by someone else
	// hasKey: the credentials Secret holds a key for the alias, keyID its id (empty when the
	// Secret's record lacks it).
	hasKey bool
	keyID  string
	// effectiveKey is the id of the key in effect in Elasticsearch (effect.go, hotreload.go).
	effectiveKey string
	missingKey   bool // the peer must send the key value again
	// info is what GET /_remote/info reported of the alias (zero when it did not).
	info elastic.RemoteInfo
	ca   string // the CA bundle applied (a string: the bundles of a pass are strings, no copy)
	// owned: an active RemoteCluster holds the alias, owner is its UID.
	owned bool
	owner types.UID
	// signingSubject is the subject the alias's requests are signed with (strong identity,
	// signing.go); signingWait why it does not sign yet although the export requires it.
	signingSubject, signingWait string
	// hasFileVersion: the settings.json version that first held the alias's key is known,
	// fileVersion (file-based secure settings only).
	hasFileVersion bool
	fileVersion    int64
}

// link returns the result of the link of alias, created on first use.
func (st *state) link(alias string) *linkResult {
	if r, ok := st.links[alias]; ok {
		return r
	}
	if st.links == nil {
		st.links = map[string]*linkResult{}
	}
	r := &linkResult{}
	st.links[alias] = r
	return r
}

// setKey records that the credentials Secret holds a key for the link, with id id.
func (r *linkResult) setKey(id string) { r.hasKey, r.keyID = true, id }

// keyIDs are the key ids of the aliases the credentials Secret holds a key for (never nil).
func (st *state) keyIDs() map[string]string {
	out := map[string]string{}
	for alias, r := range st.links {
		if r.hasKey {
			out[alias] = r.keyID
		}
	}
	return out
}

// setInfo records what GET /_remote/info reported, by alias; an alias it does not name is not
// connected.
func (st *state) setInfo(info map[string]elastic.RemoteInfo) {
	for _, r := range st.links {
		r.info = elastic.RemoteInfo{}
	}
	for alias, i := range info {
		st.link(alias).info = i
	}
}

// setEffective records the key in effect of each alias (effective: alias -> key id).
func (st *state) setEffective(effective map[string]string) {
	for _, r := range st.links {
		r.effectiveKey = ""
	}
	for alias, id := range effective {
		st.link(alias).effectiveKey = id
	}
}

// parsedBundle is one CA bundle of a pass parsed, with what the status, the LinkStatus and the
// metrics of every link that applied it derive from it, computed once.
type parsedBundle struct {
	certs []*x509.Certificate
	err   error
	// fingerprints and infos: the certificates' fingerprints and their status entries (built on
	// first use).
	fingerprints []string
	infos        []v1alpha1.CertificateInfo
	// notAfter is the latest expiry among certs.
	notAfter time.Time
}

// bundleOf returns the CA bundle applied for alias, parsed once per pass and content.
func (st *state) bundleOf(alias string) *parsedBundle {
	b := st.link(alias).ca
	if p, ok := st.parsed[b]; ok {
		return p
	}
	certs, err := pemutil.ParseCertificates([]byte(b), pemutil.Limits{})
	if st.parsed == nil {
		st.parsed = map[string]*parsedBundle{}
	}
	p := &parsedBundle{certs: certs, err: err}
	for _, c := range certs {
		if c.NotAfter.After(p.notAfter) {
			p.notAfter = c.NotAfter
		}
	}
	st.parsed[b] = p
	return p
}

// fingerprintsOf are the fingerprints of the bundle's certificates, in their order.
func (p *parsedBundle) fingerprintsOf() []string {
	if p.fingerprints == nil && len(p.certs) > 0 {
		p.fingerprints = fingerprintsOf(p.certs) // castatus.go
	}
	return p.fingerprints
}

// certificateInfos are the status entries of the bundle's certificates, a copy the caller owns.
func (p *parsedBundle) certificateInfos() []v1alpha1.CertificateInfo {
	if p.infos == nil {
		p.infos = make([]v1alpha1.CertificateInfo, 0, len(p.certs))
		for _, cert := range p.certs {
			p.infos = append(p.infos, v1alpha1.CertificateInfo{
				Fingerprint: pemutil.Fingerprint(cert), Subject: peertext.Clean(cert.Subject.String(), peertext.Status),
				// In the location the API's decoding gives a time, so an unchanged status
				// compares equal without the semantic comparison (kube.UpdateStatus).
				NotAfter: &metav1.Time{Time: cert.NotAfter.Local()},
			})
		}
	}
	out := make([]v1alpha1.CertificateInfo, len(p.infos))
	for i, info := range p.infos {
		out[i] = *info.DeepCopy()
	}
	return out
}

// reconcile brings one local Elasticsearch to what its RemoteClusters and the peers' answers say.
// Every step is idempotent, so a change cut short by a crash is finished on the next pass.
func (im *Importer) reconcile(ctx context.Context, key types.NamespacedName) (time.Duration, error) {
	ns, esName := key.Namespace, key.Name
	plans := im.plan(ns, esName)
	if err := im.addFinalizers(ctx, plans); err != nil {
		return 0, err
	}
	es, esFound := im.cfg.Cache.Elasticsearch(ns, esName)
	st := &state{esFound: esFound, links: map[string]*linkResult{}, mode: wiringMode(plans)}
	if esFound {
		version, _, _ := unstructured.NestedString(es.Object, "spec", "version")
		st.fileBased = eck.FileBasedSecureSettings(es.GetAnnotations(), version)
	}
	if esFound && anyActive(plans) {
		st.license = im.localLicense(ctx, ns, esName) // license.go
	}
	im.publishImports(ctx, plans, es, st.license)

	links, held := map[securityModel]map[string]*linkPlan{}, map[string]*linkPlan{}
	for _, m := range models {
		links[m] = map[string]*linkPlan{}
	}
	for _, p := range plans {
		switch {
		case p.applied():
			links[p.model][p.id.Alias] = p
		case p.held():
			held[p.id.Alias] = p
		}
		if p.active() {
			r := st.link(p.id.Alias)
			r.owned, r.owner = true, p.rc.UID
		}
	}
	var requeue time.Duration
	if esFound {
		var err error
		requeue, err = im.applyAll(ctx, es, plans, links, held, st)
		if apierrors.IsConflict(err) {
			// Lost a write race (the CA path wrote first): no failure to report, the pass
			// runs again on fresh content (process).
			return 0, err
		}
		if err != nil {
			st.esError, st.esReason = err.Error(), applyFailure(err)
			return 0, errors.Join(err, im.updateStatuses(ctx, plans, st))
		}
	} else if len(plans) == 0 || allDeleting(plans) {
		// The Elasticsearch is gone: nothing to unwire, only our objects to delete.
		// Each model lets go in the reverse order of the passes.
		for _, m := range slices.Backward(models) {
			if err := m.releaseOrphaned(ctx, im, ns, esName); err != nil {
				return 0, err
			}
		}
		if err := im.forgetAliases(ctx, ns, esName); err != nil {
			return 0, err
		}
	}
	statusErr := im.updateStatuses(ctx, plans, st)
	if err := im.finalize(ctx, plans, st); err != nil {
		return 0, errors.Join(err, statusErr)
	}
	if statusErr != nil {
		return 0, statusErr
	}
	if requeue == 0 {
		requeue = im.cfg.Resync
	}
	return requeue, nil
}

// addFinalizers adds the agent's finalizer to every RemoteCluster of the pass that lacks it, and
// the pass goes on with the updated objects. One pass for all of them: 100 RemoteClusters
// created at once on one Elasticsearch cost one pass, not 100 passes each waiting for the event
// of the previous one (which held their import requests back by up to a minute at 1,000 links).
// A RemoteCluster whose update fails (a conflict: it changed meanwhile) fails the pass, which
// runs again on the fresh object; the others keep their finalizer.
func (im *Importer) addFinalizers(ctx context.Context, plans []*linkPlan) error {
	var (
		mu     sync.Mutex // guards errs
		errs   []error
		writes errgroup.Group
	)
	writes.SetLimit(writers)
	for _, p := range plans {
		if p.deleting || slices.Contains(p.rc.Finalizers, v1alpha1.Finalizer) {
			continue
		}
		writes.Go(func() error {
			rc := p.rc.DeepCopy()
			rc.Finalizers = append(rc.Finalizers, v1alpha1.Finalizer)
			out, err := im.cfg.CRDs.RemoteClusters().Update(ctx, rc)
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("failed to add finalizer to RemoteCluster %s/%s: %w", rc.Namespace, rc.Name, err))
				mu.Unlock()
				return nil
			}
			p.rc = out // each write its own plan's
			return nil
		})
	}
	_ = writes.Wait() // the errors are in errs
	return errors.Join(errs...)
}

// applyAll reads which aliases the agent created, removes the settings of those no RemoteCluster
// wants any more, then runs each security model's pass over its links (links: by model, alias),
// in the order of models.
func (im *Importer) applyAll(ctx context.Context, es *unstructured.Unstructured, plans []*linkPlan, links map[securityModel]map[string]*linkPlan, held map[string]*linkPlan, st *state) (time.Duration, error) {
	esClient := im.lazyClient(ctx, es.GetNamespace(), es.GetName())
	rec, err := im.loadAliases(ctx, es, esClient)
	if err != nil {
		return 0, err
	}
	st.aliases = rec
	wanted := map[string]bool{}
	for alias := range held {
		wanted[alias] = true
	}
	for _, m := range models {
		for alias := range links[m] {
			wanted[alias] = true
		}
	}
	if err := im.releaseAliases(ctx, rec, wanted, esClient); err != nil {
		return 0, err
	}
	var requeue time.Duration
	for _, m := range models {
		r, err := m.apply(ctx, im, &modelPass{es: es, plans: plans, links: links[m], held: held, st: st, client: esClient})
		if err != nil {
			return 0, err
		}
		requeue = sooner(requeue, r)
	}
	for _, p := range plans {
		if p.transportCA != nil {
			st.link(p.id.Alias).ca = string(p.transportCA)
		}
	}
	return requeue, nil
}

// lazyClient returns the Elasticsearch client on first use: a CA update reaches the ConfigMap
// before any call to Elasticsearch.
func (im *Importer) lazyClient(ctx context.Context, ns, es string) func() (*elastic.Client, error) {
	var client *elastic.Client
	return func() (*elastic.Client, error) {
		if client != nil {
			return client, nil
		}
		c, err := im.cfg.Elastic.Client(ctx, elastic.Target{Namespace: ns, Name: es})
		if err != nil {
			return nil, fmt.Errorf("failed to reach Elasticsearch %s/%s: %w", ns, es, err)
		}
		client = c
		return c, nil
	}
}

func anyActive(plans []*linkPlan) bool {
	for _, p := range plans {
		if p.active() {
			return true
		}
	}
	return false
}

func allDeleting(plans []*linkPlan) bool {
	for _, p := range plans {
		if !p.deleting {
			return false
		}
	}
	return true
}

// publishImports asks each RemoteCluster's peer for its export.
func (im *Importer) publishImports(ctx context.Context, plans []*linkPlan, es *unstructured.Unstructured, lic license.License) {
	version := ""
	if es != nil {
		version, _, _ = unstructured.NestedString(es.Object, "spec", "version")
	}
	var signingBundle []byte
	var signingSubject string
	if len(plans) > 0 {
		signingBundle, signingSubject = im.signingRequest(ctx, es)
	}
	for _, p := range plans {
		if !p.active() {
			continue
		}
		peer := p.rc.Spec.Peer
		resource := link.Resource(link.KindImport, p.id)
		im.mu.Lock()
		old := im.published[p.id]
		im.published[p.id] = peer
		im.mu.Unlock()
		if old != "" && old != peer {
			_ = im.cfg.Outbox.Remove(old, resource)
		}
		req := &peerv1.ImportRequest{
			Link:                 p.id.Proto(),
			ExportNamespace:      p.rc.Spec.Export.Namespace,
			ExportName:           p.rc.Spec.Export.Name,
			ElasticsearchVersion: version,
			// The consumer decides which model it accepts; the export must use the same.
			Model:                p.model.wire(),
			SigningCaBundle:      signingBundle,
			SigningSubject:       signingSubject,
			ElasticsearchLicense: lic.Proto(),
		}
		p.model.request(im, p, req) // what the model adds: a key rotation request, the transport CA
		if err := im.cfg.Outbox.Publish(peer, resource, req); err != nil {
			im.log.Warn("failed to publish import request", "link", p.id.String(), "peer", peer, "error", err)
		}
	}
}

// apply writes the ConfigMap, the Secret, the wiring and the settings, then verifies. The
// settings of aliases no longer wanted went before (releaseAliases), so their trust and
// credentials go after them.
func (im *Importer) apply(ctx context.Context, es *unstructured.Unstructured, plans []*linkPlan, desired, held map[string]*linkPlan, st *state, esClient func() (*elastic.Client, error)) (time.Duration, error) {
	ns, esName := es.GetNamespace(), es.GetName()
	aliases := slices.Sorted(maps.Keys(desired))

	// 2. CA bundles.
	empty, err := im.applyCABundles(ctx, ns, esName, aliases, desired, held, st)
	if err != nil {
		return 0, err
	}
	if empty {
		return im.unwire(ctx, es)
	}

	// 3. Credentials.
	secret, err := im.applyCredentials(ctx, ns, esName, aliases, desired, held, st)
	if err != nil {
		return 0, err
	}

	// 4. Wiring of the Elasticsearch resource, once.
	if err := im.wire(ctx, es, plans, st); err != nil {
		return 0, err
	}
	if st.userUnwired {
		// Manual wiring, and the snippet that names the agent's user is not applied yet: no call
		// to Elasticsearch can authenticate before it is.
		return im.cfg.Pending, nil
	}

	client, current, err := st.clientAndSettings(ctx, esClient)
	if err != nil {
		return 0, err
	}

	// 5. Remote cluster settings, proxy mode.
	if st.wired {
		if err := im.applySettings(ctx, client, ns, esName, aliases, desired, current, st); err != nil {
			return 0, err
		}
	}

	// 6. Strong identity: sign once the remote trusts the signing CA, stop once it no longer
	// requires an identity (signing.go).
	signRequeue, err := im.applySigning(ctx, client, es, desired, current, st)
	if err != nil {
		return 0, err
	}

	// 7. Verify.
	return im.verify(ctx, client, ns, esName, secret, st, signRequeue)
}

// applyCABundles writes the CA ConfigMap of the Elasticsearch ns/esName: the merged bundle of
// each desired alias, what held aliases had, and the combined file the nodes read. empty says
// that no alias has a bundle (nothing to wire).
func (im *Importer) applyCABundles(ctx context.Context, ns, esName string, aliases []string, desired, held map[string]*linkPlan, st *state) (empty bool, err error) {
	cm, cmExists, err := im.getConfigMap(ctx, ns, esName)
	if err != nil {
		return false, err
	}

	incoming := make(map[string][]byte, len(aliases))
	for _, alias := range aliases {
		incoming[alias] = im.latestCA(desired[alias])
	}
	bundles, err := nextCABundles(cm, incoming, slices.Collect(maps.Keys(held)), im.cfg.Now())
	if err != nil {
		return false, err
	}
	for alias, b := range bundles {
		st.link(alias).ca = b
	}
	if len(bundles) == 0 {
		return true, nil
	}
	wantCM := withCABundles(cm, bundles)
	wantCM.Labels = ownLabels(esName)
	// Release 0.1.0's list of aliases, migrated to the agent's namespace (aliases.go).
	delete(wantCM.Annotations, annotationAliases)
	if !cmExists || !maps.Equal(cm.Data, wantCM.Data) || !maps.Equal(cm.Annotations, wantCM.Annotations) || !maps.Equal(cm.Labels, wantCM.Labels) {
		// Elasticsearch reads ca.crt only: moving the entries (the upgrade from 0.1.0's layout)
		// needs no pod sync.
		mounted := cmExists && cm.Data[wiring.CAFileKey] != wantCM.Data[wiring.CAFileKey]
		if _, err := im.saveConfigMap(ctx, wantCM, cmExists); err != nil {
			return false, err
		}
		if mounted {
			im.markPods(types.NamespacedName{Namespace: ns, Name: esName}) // pods.go
		}
		cmExists = true
		failpoint.Inject(failpoint.ImporterAfterConfigMapWrite)
	}

	return false, nil
}

// applyCredentials writes the credentials Secret of the Elasticsearch ns/esName: each desired
// alias's encoded key (or the one it holds when the peer sent only the id), what held aliases
// had, and when each key value was written (for the effective-key check).
func (im *Importer) applyCredentials(ctx context.Context, ns, esName string, aliases []string, desired, held map[string]*linkPlan, st *state) (*corev1.Secret, error) {
	secret, secretExists, err := im.getSecret(ctx, ns, esName)
	if err != nil {
		return nil, err
	}
	oldIDs := readJSONMap(secret.Annotations, annotationKeyIDs)
	oldRecords := readKeystore(secret.Annotations)
	sdata := map[string][]byte{}
	for alias := range held {
		if k := wiring.CredentialsKey(alias); len(secret.Data[k]) > 0 {
			sdata[k] = secret.Data[k]
			st.link(alias).setKey(oldIDs[alias])
		}
	}
	for _, alias := range aliases {
		c := desired[alias].answer.creds
		k := wiring.CredentialsKey(alias)
		value := []byte(c.GetApiKeyEncoded())
		if len(value) == 0 {
			if oldIDs[alias] != c.GetApiKeyId() || len(secret.Data[k]) == 0 {
				r := st.link(alias)
				r.missingKey = true
				if len(secret.Data[k]) > 0 {
					sdata[k] = secret.Data[k]
					r.setKey(oldIDs[alias])
				}
				continue
			}
			value = secret.Data[k]
		}
		sdata[k] = value
		st.link(alias).setKey(c.GetApiKeyId())
	}
	// Record when each key value was written, for the effective-key check.
	keyIDs := st.keyIDs()
	records := map[string]keystoreRecord{}
	for alias, id := range keyIDs {
		rec, ok := oldRecords[alias]
		k := wiring.CredentialsKey(alias)
		if !ok || rec.KeyID != id || string(secret.Data[k]) != string(sdata[k]) {
			rec = keystoreRecord{KeyID: id, WrittenAt: im.cfg.Now()}
		}
		records[alias] = rec
	}
	wantSecret := secret.DeepCopy()
	wantSecret.Data = sdata
	wantSecret.Labels = ownLabels(esName)
	if wantSecret.Annotations == nil {
		wantSecret.Annotations = map[string]string{}
	}
	writeJSON(wantSecret.Annotations, annotationKeyIDs, keyIDs)
	writeJSON(wantSecret.Annotations, annotationKeystore, records)
	if !secretExists || !equalData(secret.Data, sdata) || !maps.Equal(secret.Annotations, wantSecret.Annotations) || !maps.Equal(secret.Labels, wantSecret.Labels) {
		if secret, err = im.saveSecret(ctx, wantSecret, secretExists); err != nil {
			return nil, err
		}
		im.log.Info("credentials written", "elasticsearch", ns+"/"+esName, "aliases", len(sdata))
		failpoint.Inject(failpoint.ImporterAfterSecretWrite)
	}

	return secret, nil
}

// applySettings configures proxy-mode cluster.remote.<alias> for each alias with a key; an
// alias someone else configured is never taken over.
func (im *Importer) applySettings(ctx context.Context, client *elastic.Client, ns, esName string, aliases []string, desired map[string]*linkPlan, current map[string]elastic.RemoteSettings, st *state) error {
	var mine []string
	for _, alias := range aliases {
		if !st.link(alias).hasKey {
			continue
		}
		if _, exists := current[alias]; exists && !st.aliases.has(alias) {
			st.link(alias).userAlias = true
			continue
		}
		mine = append(mine, alias)
	}
	return im.writeProxySettings(ctx, client, ns, esName, v1alpha1.SecurityModelAPIKey, mine, desired, current, st)
}

// writeProxySettings configures cluster.remote.<alias> in proxy mode from the peer's answer for
// each of aliases (both security models: the address and server name differ, the setting does
// not), against the settings current read once per pass. An alias is recorded as ours before
// it is written, so a crash in between cannot leave a setting nobody removes. The new aliases
// are recorded with one write of the record and the settings that differ are written in one
// request (elastic.PutRemotesOver): 100 links arriving together cost one record write and one
// cluster state update, not 100 of each, and an unchanged pass writes nothing.
func (im *Importer) writeProxySettings(ctx context.Context, client *elastic.Client, ns, esName string, model v1alpha1.SecurityModel, aliases []string, plans map[string]*linkPlan, current map[string]elastic.RemoteSettings, st *state) error {
	var unrecorded []string
	wants := make(map[string]elastic.RemoteSettings, len(aliases))
	for _, alias := range aliases {
		if !st.aliases.has(alias) {
			unrecorded = append(unrecorded, alias)
		}
		wants[alias] = proxyWant(plans[alias])
	}
	if err := st.aliases.addAll(ctx, unrecorded); err != nil {
		return err
	}
	if len(unrecorded) > 0 {
		failpoint.Inject(failpoint.ImporterBeforeSettingsPut)
	}
	written, err := client.PutRemotesOver(ctx, wants, current)
	for _, alias := range written {
		w := wants[alias]
		im.log.Info("remote cluster settings applied", "elasticsearch", ns+"/"+esName, "alias", alias, "proxy_address", w.ProxyAddress, "model", string(model))
	}
	if err != nil {
		for _, alias := range written {
			st.link(alias).settingsApplied = true
		}
		return fmt.Errorf("failed to configure remote clusters: %w", err)
	}
	for alias := range wants {
		st.link(alias).settingsApplied = true
	}
	return nil
}

// proxyWant is the proxy-mode setting of a link, from the peer's answer.
func proxyWant(p *linkPlan) elastic.RemoteSettings {
	c := p.answer.creds
	return elastic.RemoteSettings{Mode: "proxy", ProxyAddress: c.GetProxyAddress(), ServerName: c.GetServerName(), SkipUnavailable: p.rc.Spec.SkipUnavailable}
}

// verify reads _remote/info and which key each node uses, records the effective keys on the
// Secret, and asks to come back soon (after at the latest) while a link is not connected with
// its newest key.
func (im *Importer) verify(ctx context.Context, client *elastic.Client, ns, esName string, secret *corev1.Secret, st *state, after time.Duration) (time.Duration, error) {
	if err := st.loadInfo(ctx, client); err != nil {
		return 0, err
	}
	previous := readJSONMap(secret.Annotations, annotationEffective)
	var effective map[string]string
	var synced map[string]keystoreRecord
	if st.fileBased {
		effective, synced = im.hotReloadedKeys(ctx, client, ns, esName, secret, readKeystore(secret.Annotations), previous, st) // hotreload.go
	} else {
		effective, synced = im.effectiveKeys(ctx, client, ns, esName, secret, readKeystore(secret.Annotations), previous)
	}
	st.setEffective(effective)
	before := secret.Annotations[annotationKeystore]
	secret = secret.DeepCopy()
	writeJSON(secret.Annotations, annotationKeystore, synced)
	if !maps.Equal(previous, effective) || before != secret.Annotations[annotationKeystore] {
		writeJSON(secret.Annotations, annotationEffective, effective)
		if _, err := im.saveSecret(ctx, secret, true); err != nil {
			return 0, err
		}
	}
	requeue := after
	for _, r := range st.links {
		if r.hasKey && (!r.info.Connected || r.effectiveKey != r.keyID) {
			requeue = im.cfg.Pending
		}
	}
	return requeue, nil
}

// wiringMode is the wiring mode of one Elasticsearch: its active RemoteClusters' modes joined
// (any RemoteCluster asking for manual wiring keeps the agent's hands off the resource).
func wiringMode(plans []*linkPlan) wiring.Mode {
	mode := wiring.Managed
	for _, p := range plans {
		if p.active() {
			mode = mode.Join(wiring.ParseMode(p.rc.Spec.Wiring))
		}
	}
	return mode
}

// wire makes the one-time change to the Elasticsearch resource when st.mode edits it, or reports
// the snippet and whether the user applied it.
func (im *Importer) wire(ctx context.Context, es *unstructured.Unstructured, plans []*linkPlan, st *state) error {
	if !st.mode.Edits() {
		missing, err := wiring.Missing(es)
		if err != nil {
			return err
		}
		var parts []wiring.Part
		if im.cfg.AgentUser {
			auth := esuser.Auth(es.GetName())
			userMissing := wiring.MissingAuth(es, auth)
			st.userUnwired = len(userMissing) > 0
			missing = append(missing, userMissing...)
			parts = append(parts, auth)
		}
		st.wired = len(missing) == 0
		if !st.wired {
			if st.snippet, err = wiring.Snippet(es, parts...); err != nil {
				return err
			}
		}
		return nil
	}
	_, changes, err := im.editor().Edit(ctx, es, "wire", func(obj *unstructured.Unstructured) ([]string, error) {
		changes, err := wiring.Apply(obj)
		if err != nil || !supportsSigning(obj) {
			return changes, err
		}
		// Mounted with the rest (optional), so that signing can start later without a restart.
		more, err := wiring.ApplyVolume(obj, wiring.SigningVolume(obj.GetName()))
		return append(changes, more...), err
	})
	if err != nil {
		return err
	}
	if len(changes) > 0 {
		im.log.Info("elasticsearch wired", "elasticsearch", es.GetNamespace()+"/"+es.GetName(), "changes", len(changes))
		failpoint.Inject(failpoint.ImporterAfterWiring)
		for _, p := range plans {
			if p.active() {
				im.cfg.Recorder.Event(p.rc, corev1.EventTypeNormal, "Wired", "wired Elasticsearch "+es.GetName()+" (ECK restarts it once): "+joinChanges(changes))
			}
		}
	}
	st.wired = true
	return nil
}

// unwire removes everything of the API-key half when none of its links is left: the settings
// already went (releaseAliases), then the wiring, then the Secret and ConfigMap.
func (im *Importer) unwire(ctx context.Context, es *unstructured.Unstructured) (time.Duration, error) {
	if es.GetAnnotations()[wiring.AnnotationWiring] != "" || wiring.Recorded(es, wiring.SigningVolume(es.GetName())) {
		_, _, err := im.editor().Edit(ctx, es, "unwire", func(obj *unstructured.Unstructured) ([]string, error) {
			changes, err := wiring.Remove(obj)
			if err != nil {
				return nil, err
			}
			more, err := wiring.RemoveVolume(obj, wiring.SigningVolume(obj.GetName()))
			return append(changes, more...), err
		})
		if err != nil {
			return 0, err
		}
		im.log.Info("elasticsearch unwired", "elasticsearch", es.GetNamespace()+"/"+es.GetName())
	}
	if err := im.deleteOwn(ctx, es.GetNamespace(), es.GetName()); err != nil {
		return 0, err
	}
	return 0, nil
}

// finalize lets go of deleted RemoteClusters whose alias is gone from the Elasticsearch, and
// tells their peer.
func (im *Importer) finalize(ctx context.Context, plans []*linkPlan, st *state) error {
	for _, p := range plans {
		if !p.deleting || !slices.Contains(p.rc.Finalizers, v1alpha1.Finalizer) {
			continue
		}
		if r := st.link(p.id.Alias); !r.owned || r.owner == p.rc.UID {
			// Nobody else holds the alias: wait until it is gone from the Elasticsearch.
			if r.settingsApplied || r.keyID != "" {
				continue
			}
		}
		im.mu.Lock()
		peer := im.published[p.id]
		delete(im.published, p.id)
		delete(im.answers, p.id)
		im.mu.Unlock()
		if peer == "" {
			peer = p.rc.Spec.Peer
		}
		_ = im.cfg.Outbox.Remove(peer, link.Resource(link.KindImport, p.id))
		_ = im.cfg.Outbox.Remove(peer, link.Resource(link.KindStatus, p.id))
		im.releaseCAStatus(p.id)
		rc := p.rc.DeepCopy()
		rc.Finalizers = slices.DeleteFunc(rc.Finalizers, func(f string) bool { return f == v1alpha1.Finalizer })
		if _, err := im.cfg.CRDs.RemoteClusters().Update(ctx, rc); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("failed to remove finalizer from RemoteCluster %s/%s: %w", rc.Namespace, rc.Name, err)
		}
		im.cfg.Metrics.ForgetLink(p.id.Namespace, p.id.Elasticsearch, p.id.Alias)
		im.log.Info("remote cluster removed", "link", p.id.String(), "peer", peer)
	}
	return nil
}

// getConfigMap reads the agent's CA ConfigMap of a local Elasticsearch from the informer cache
// (echo.go): a stale copy only makes the write fail on its resourceVersion, and the pass is
// retried at once.
func (im *Importer) getConfigMap(_ context.Context, ns, es string) (*corev1.ConfigMap, bool, error) {
	cm, ok := cachedOrNew(im.cachedConfigMap, ns, wiring.CAConfigMapName(es), func(m metav1.ObjectMeta) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: m}
	})
	return cm, ok, nil
}

// getSecret reads the agent's credentials Secret of a local Elasticsearch from the informer
// cache, as getConfigMap.
func (im *Importer) getSecret(_ context.Context, ns, es string) (*corev1.Secret, bool, error) {
	s, ok := cachedOrNew(im.cachedSecret, ns, wiring.CredentialsSecretName(es), func(m metav1.ObjectMeta) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: m}
	})
	return s, ok, nil
}

// cachedOrNew reads ns/name with cached, or builds it when the cache does not hold it (false);
// either way with an annotation map the reconcile can set keys in.
func cachedOrNew[T metav1.Object](cached func(ns, name string) (T, bool), ns, name string, build func(metav1.ObjectMeta) T) (T, bool) {
	obj, ok := cached(ns, name)
	if !ok {
		obj = build(metav1.ObjectMeta{Name: name, Namespace: ns})
	}
	if obj.GetAnnotations() == nil {
		obj.SetAnnotations(map[string]string{})
	}
	return obj, ok
}

func equalData(a, b map[string][]byte) bool {
	return maps.EqualFunc(a, b, func(x, y []byte) bool { return string(x) == string(y) })
}

func joinChanges(c []string) string {
	out := ""
	for i, s := range c {
		if i > 0 {
			out += "; "
		}
		out += s
	}
	return out
}
