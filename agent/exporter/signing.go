package exporter

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/cache"
	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/signing"
	"github.com/ecklink/ecklink/agent/wiring"
	"github.com/ecklink/ecklink/internal/pemutil"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// Strong identity verification, remote side. For a link of an export that requires it (both
// sides 9.3+), the exporter puts the consumer's signing CA bundle into the exported
// Elasticsearch's ConfigMap <es>-ecklink-signing-ca (an optional volume mounted as soon as the
// Elasticsearch is exported, so that enabling needs no restart), lists that file in
// cluster.remote.signing.certificate_authorities and tells the peer which CAs its Elasticsearch
// trusts once the file is visible in every node. The peer then signs, and reports the subject it
// signs with; only then does the key get its certificate_identity. Disabling goes the other way:
// the identity goes first, then the peer stops signing, then the CA leaves the ConfigMap.

// Steps of a link's strong identity, remote side (ExportLink.strongIdentity and the
// RemoteCluster's StrongIdentity condition through the Credentials).
const (
	stepTrustPending   = "TrustPending"   // the signing CA is not yet trusted by every node
	stepSigningPending = "SigningPending" // trusted; waiting for the peer to sign
	stepEnforced       = "Enforced"       // the key requires the peer's signing subject
	stepIdentityClear  = "IdentityClearing"
	stepSigningStop    = "SigningStopping" // identity cleared; waiting for the peer to stop signing
	stepTrustRelease   = "TrustReleasing"
	stepUnavailable    = "Unavailable" // the export prefers it, but a side cannot (Credentials say why)
)

// siInput is what the exporter knows of one link's strong identity.
type siInput struct {
	// required: the export requires strong identity and the link may have it (both 9.3+).
	required bool
	// subject the consumer signs with (its import request), and the one it reports signing with
	// (its link status, "" when it does not sign).
	subject, signingSubject string
	// noKey: the link has no live key yet; hasIdentity: its newest key requires subject.
	noKey, hasIdentity bool
	// trusted: some of the consumer's signing CAs are trusted by the exported Elasticsearch now
	// (which one is active only the consumer knows; it signs once that one is).
	trusted bool
	// caHeld: the consumer's signing CAs are in the exported Elasticsearch's ConfigMap.
	caHeld bool
}

// siPlan is what to do next for one link.
type siPlan struct {
	// holdCA keeps (or puts) the consumer's signing CAs in the ConfigMap.
	holdCA bool
	// identity: true sets certificate_identity on the link's keys, false clears it.
	identity bool
	step     string
}

// planSigning decides the next strong identity step of a link, in the only order that keeps a
// live link connected: enable = trust, then the peer signs, then the identity; disable = the
// identity goes, then the peer stops signing, then the trust.
func planSigning(in siInput) siPlan {
	if in.required {
		p := siPlan{holdCA: true}
		// A new key starts with its identity (it never works alone); a live key gets it once
		// the peer signs with the subject; a key that has it keeps it while Required.
		p.identity = in.noKey || in.hasIdentity || (in.signingSubject != "" && in.signingSubject == in.subject)
		switch {
		case p.identity && in.signingSubject == in.subject:
			p.step = stepEnforced
		case !in.trusted:
			p.step = stepTrustPending
		default:
			p.step = stepSigningPending
		}
		return p
	}
	switch {
	case in.hasIdentity:
		return siPlan{holdCA: in.caHeld, step: stepIdentityClear}
	case in.signingSubject != "":
		return siPlan{holdCA: in.caHeld, step: stepSigningStop}
	case in.caHeld:
		return siPlan{step: stepTrustRelease}
	}
	return siPlan{}
}

// signingOwner is the ConfigMap key of a link's signing CAs.
func signingOwner(peer string, id link.ID) string {
	return "link." + peer + "." + id.Namespace + "." + id.Elasticsearch + "." + id.Alias + ".pem"
}

// annotationSigningAdded records when each CA (by fingerprint) was first written into ca.crt,
// for the kubelet's sync delay (JSON map fingerprint -> RFC 3339 time).
const annotationSigningAdded = "ecklink.io/signing-ca-added"

// signingTrust is the state of an exported Elasticsearch's signing trust after applySigningCA.
type signingTrust struct {
	// held: the owner's CAs are in the ConfigMap.
	held bool
	// trusted: fingerprints of the owner's CAs visible to every node and listed in the setting.
	trusted []string
	// wait: how soon more of them become trusted (0: nothing pending).
	wait time.Duration
}

// applySigningCA puts (bundle non-nil) or removes (nil) the owner's signing CAs in the exported
// Elasticsearch's ConfigMap, keeps its mount and cluster.remote.signing.certificate_authorities,
// and reports which of the owner's CAs the Elasticsearch trusts.
func (e *Exporter) applySigningCA(ctx context.Context, target elastic.Target, owner string, bundle []byte) (signingTrust, error) {
	now := e.cfg.Now()
	cms := e.cfg.Kube.CoreV1().ConfigMaps(target.Namespace)
	name := wiring.SigningCAConfigMapName(target.Name)
	cm, err := cms.Get(ctx, name, metav1.GetOptions{})
	exists := err == nil
	switch {
	case apierrors.IsNotFound(err):
		if bundle == nil {
			return signingTrust{}, nil
		}
		cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: target.Namespace,
			Labels: map[string]string{cache.ManagedByLabel: cache.ManagedByValue}}}
	case err != nil:
		return signingTrust{}, fmt.Errorf("failed to read ConfigMap %s/%s: %w", target.Namespace, name, err)
	}
	if _, has := cm.Data[owner]; bundle == nil && !has {
		return signingTrust{}, nil
	}
	want := cm.DeepCopy()
	if want.Data == nil {
		want.Data = map[string]string{}
	}
	if bundle == nil {
		delete(want.Data, owner)
	} else {
		want.Data[owner] = string(bundle)
	}
	union, added := unionCAs(want.Data, readAdded(cm.Annotations), now)
	if len(union) == 0 {
		delete(want.Data, wiring.CAFileKey)
	} else {
		want.Data[wiring.CAFileKey] = string(pemutil.EncodeBundle(union))
	}
	if want.Annotations == nil {
		want.Annotations = map[string]string{}
	}
	raw, _ := json.Marshal(added)
	want.Annotations[annotationSigningAdded] = string(raw)
	if !exists || !maps.Equal(cm.Data, want.Data) || !maps.Equal(cm.Annotations, want.Annotations) {
		if exists {
			_, err = cms.Update(ctx, want, metav1.UpdateOptions{})
		} else {
			_, err = cms.Create(ctx, want, metav1.CreateOptions{})
		}
		if err != nil {
			return signingTrust{}, fmt.Errorf("failed to write ConfigMap %s/%s: %w", target.Namespace, name, err)
		}
		e.log.Info("signing CAs updated", "elasticsearch", target.String(), "configmap", name, "cas", len(union))
	}
	if err := e.wireSigningCA(ctx, target); err != nil {
		return signingTrust{}, err
	}
	client, err := e.cfg.Elastic.Client(ctx, target)
	if err != nil {
		return signingTrust{}, fmt.Errorf("failed to reach %s: %w", target, err)
	}
	var paths []string
	if len(union) > 0 {
		paths = []string{wiring.SigningCAPath}
	} else if have, err := client.GetSigningCAs(ctx); err != nil || !slices.Equal(have, []string{wiring.SigningCAPath}) {
		// Not ours to remove (or unreadable: the next pass retries).
		return signingTrust{}, err
	}
	if _, err := client.PutSigningCAs(ctx, paths); err != nil {
		if elastic.IsBadRequest(err) {
			// The file is not on every node yet (the mount rolls out, or the kubelet has not
			// synced the new ConfigMap): Elasticsearch refuses a path it cannot read.
			e.log.Debug("signing CA file not visible in every node yet", "elasticsearch", target.String(), "error", err)
			return signingTrust{held: bundle != nil, wait: 2 * time.Second}, nil
		}
		return signingTrust{}, err
	}
	if bundle == nil {
		return signingTrust{}, nil
	}
	return trustedOf(bundle, added, now, e.cfg.SigningSyncDelay), nil
}

// trustedOf lists the CAs of bundle that every node sees: written longer than the kubelet's sync
// delay ago (the setting that names the file was accepted, so the file is mounted everywhere).
func trustedOf(bundle []byte, added map[string]time.Time, now time.Time, delay time.Duration) signingTrust {
	st := signingTrust{held: true}
	certs, _ := pemutil.ParseCertificates(bundle, pemutil.Limits{})
	for _, c := range certs {
		fp := pemutil.Fingerprint(c)
		at, ok := added[fp]
		if !ok {
			continue
		}
		if visible := at.Add(delay); !now.Before(visible) {
			st.trusted = append(st.trusted, fp)
		} else if w := visible.Sub(now); st.wait == 0 || w < st.wait {
			st.wait = w
		}
	}
	sort.Strings(st.trusted)
	return st
}

// unionCAs is every unexpired CA of the owners' entries (deduplicated, sorted by fingerprint)
// and when each was first written (kept from before, else now).
func unionCAs(data map[string]string, before map[string]time.Time, now time.Time) ([]*x509.Certificate, map[string]time.Time) {
	seen := map[string]*x509.Certificate{}
	for k, v := range data {
		if !strings.HasPrefix(k, "link.") {
			continue
		}
		certs, err := pemutil.ParseCertificates([]byte(v), pemutil.Limits{})
		if err != nil {
			continue
		}
		for _, c := range certs {
			if now.Before(c.NotAfter) {
				seen[pemutil.Fingerprint(c)] = c
			}
		}
	}
	added := map[string]time.Time{}
	var out []*x509.Certificate
	for _, fp := range slices.Sorted(maps.Keys(seen)) {
		out = append(out, seen[fp])
		if at, ok := before[fp]; ok {
			added[fp] = at
		} else {
			added[fp] = now
		}
	}
	return out, added
}

func readAdded(ann map[string]string) map[string]time.Time {
	out := map[string]time.Time{}
	if raw := ann[annotationSigningAdded]; raw != "" {
		_ = json.Unmarshal([]byte(raw), &out)
	}
	return out
}

// wireSigningCA mounts the signing CA ConfigMap (optional) in the exported Elasticsearch when it
// runs 9.3 or later, so that trusting a signing CA later needs no restart.
func (e *Exporter) wireSigningCA(ctx context.Context, target elastic.Target) error {
	es, ok := e.cfg.Cache.Elasticsearch(target.Namespace, target.Name)
	if !ok {
		return fmt.Errorf("elasticsearch %s: %w", target, errRetry)
	}
	version, _, _ := unstructured.NestedString(es.Object, "spec", "version")
	if ok, _ := signing.Supported(version); !ok {
		return nil
	}
	_, changes, err := e.editor().Edit(ctx, es, "mount the signing CAs in", func(obj *unstructured.Unstructured) ([]string, error) {
		return wiring.ApplyVolume(obj, wiring.SigningCAVolume(target.Name))
	})
	if err != nil || len(changes) == 0 {
		return err
	}
	e.log.Info("signing CA volume mounted", "elasticsearch", target.String(), "changes", strings.Join(changes, "; "))
	return nil
}

// identityOf says whether a key requires exactly subject.
func identityOf(k *elastic.Key, subject string) bool {
	return k != nil && k.CertificateIdentity != nil && *k.CertificateIdentity == signing.IdentityPattern(subject)
}

// linkSigning is one reconcile's strong identity state of a link.
type linkSigning struct {
	required bool
	// fallback: why a link of an export that prefers strong identity runs without it.
	fallback string
	subject  string
	bundle   []byte
	owner    string
	// caHeld: the link's CAs were in the ConfigMap before this reconcile.
	caHeld bool
	trust  signingTrust
	plan   siPlan
}

// prepareSigning makes the exported Elasticsearch trust the consumer's signing CAs when the
// export requires strong identity (the refusal already checked both versions and the request).
func (e *Exporter) prepareSigning(ctx context.Context, peer string, id link.ID, exp *v1alpha1.ClusterExport, target elastic.Target, version string, req *peerv1.ImportRequest) (*linkSigning, error) {
	use, why := strongIdentityMode(exp, version, req)
	si := &linkSigning{
		required: use,
		fallback: why,
		subject:  req.GetSigningSubject(),
		bundle:   req.GetSigningCaBundle(),
		owner:    signingOwner(peer, id),
	}
	if si.required {
		if _, err := pemutil.ValidateCABundle(si.bundle, e.cfg.Now(), pemutil.DefaultLimits); err != nil {
			return nil, fmt.Errorf("invalid signing_ca_bundle of link %s: %w", id, err)
		}
		trust, err := e.applySigningCA(ctx, target, si.owner, si.bundle)
		if err != nil {
			return nil, err
		}
		si.trust, si.caHeld = trust, true
		return si, nil
	}
	// Whether CAs of the link are left to clean up, from the informer cache: every pass of every
	// link asks (a live GET each was a per-link API call at every resync); a change not seen
	// yet is seen by the next pass, and the removal itself reads the ConfigMap live.
	if cm, ok := e.cfg.Cache.OwnConfigMap(target.Namespace, wiring.SigningCAConfigMapName(target.Name)); ok {
		_, si.caHeld = cm.Data[si.owner]
	}
	return si, nil
}

// identity is the certificate_identity decision for ensureKey.
func (si *linkSigning) identity(status *peerv1.LinkStatus) func(newest *elastic.Key) *string {
	return func(newest *elastic.Key) *string {
		in := siInput{required: si.required, subject: si.subject, signingSubject: status.GetSigningSubject(),
			noKey: newest == nil, caHeld: si.caHeld}
		if si.required {
			in.hasIdentity = identityOf(newest, si.subject)
			in.trusted = len(si.trust.trusted) > 0
		} else {
			in.hasIdentity = newest != nil && newest.CertificateIdentity != nil
		}
		si.plan = planSigning(in)
		if !si.plan.identity {
			return nil
		}
		p := signing.IdentityPattern(si.subject)
		return &p
	}
}

// finishSigning drops the link's signing CAs once the plan lets them go, and records the step.
func (e *Exporter) finishSigning(ctx context.Context, peer string, id link.ID, target elastic.Target, si *linkSigning, st *linkState) error {
	if si.caHeld && !si.plan.holdCA {
		if _, err := e.applySigningCA(ctx, target, si.owner, nil); err != nil {
			return err
		}
		e.log.Info("signing CA of link no longer trusted: strong identity is off", "peer", peer, "link", id.String())
	}
	if si.plan.step == "" && si.fallback != "" {
		si.plan.step = stepUnavailable
	}
	e.mu.Lock()
	if st.siStep != si.plan.step {
		e.log.Info("strong identity step", "peer", peer, "link", id.String(), "step", si.plan.step)
	}
	st.siStep = si.plan.step
	e.mu.Unlock()
	return nil
}

// releaseSigning removes a removed or refused link's signing CAs.
func (e *Exporter) releaseSigning(ctx context.Context, peer string, id link.ID, st *linkState) error {
	e.mu.Lock()
	target := st.target
	e.mu.Unlock()
	if target == nil {
		return nil
	}
	_, err := e.applySigningCA(ctx, *target, signingOwner(peer, id), nil)
	return err
}

func sooner(a, b time.Duration) time.Duration {
	if a == 0 || (b > 0 && b < a) {
		return b
	}
	return a
}

// releaseSigningCA removes the signing CA mount, setting and ConfigMap of an Elasticsearch that
// no other export exports, when export exp goes.
func (e *Exporter) releaseSigningCA(ctx context.Context, exp *v1alpha1.ClusterExport) error {
	target := elastic.Target{Namespace: exp.Namespace, Name: exp.Spec.ElasticsearchRef.Name}
	for _, other := range e.cfg.Cache.ClusterExports() {
		if other.Namespace == exp.Namespace && other.Name != exp.Name && other.DeletionTimestamp == nil &&
			other.Spec.ElasticsearchRef.Name == target.Name {
			return nil
		}
	}
	es, ok := e.cfg.Cache.Elasticsearch(target.Namespace, target.Name)
	if ok && es.GetAnnotations()[wiring.AnnotationVolumes] != "" {
		client, err := e.cfg.Elastic.Client(ctx, target)
		if err != nil {
			return fmt.Errorf("failed to reach %s: %w", target, err)
		}
		if have, err := client.GetSigningCAs(ctx); err != nil {
			return err
		} else if slices.Equal(have, []string{wiring.SigningCAPath}) {
			if _, err := client.PutSigningCAs(ctx, nil); err != nil {
				return err
			}
		}
		if _, _, err := e.editor().Edit(ctx, es, "unmount the signing CAs from", func(obj *unstructured.Unstructured) ([]string, error) {
			return wiring.RemoveVolume(obj, wiring.SigningCAVolume(target.Name))
		}); err != nil {
			return err
		}
	}
	name := wiring.SigningCAConfigMapName(target.Name)
	if err := e.cfg.Kube.CoreV1().ConfigMaps(target.Namespace).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("failed to delete ConfigMap %s/%s: %w", target.Namespace, name, err)
	}
	return nil
}
