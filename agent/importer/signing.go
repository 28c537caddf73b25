package importer

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/cache"
	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/kube"
	"github.com/ecklink/ecklink/agent/signing"
	"github.com/ecklink/ecklink/agent/wiring"
	"github.com/ecklink/ecklink/internal/pemutil"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// Strong identity verification, local side. The agent holds one signing CA (Secret
// ecklink-signing-ca in its namespace) and issues each local Elasticsearch 9.3+ one signing
// certificate (Secret <es>-ecklink-signing, mounted as an optional volume with the wiring, so
// that signing can start later without a restart). Import requests carry the CA bundle and the
// subject. When a peer's credentials say the export requires strong identity and its
// Elasticsearch trusts the active signing CA, the alias's signing settings point at the mounted
// files and the link status reports the subject; when the export no longer requires it and the
// key no longer carries an identity, the settings go.

// SigningCASecretName is the Secret in the agent's namespace holding the signing CA state.
const SigningCASecretName = "ecklink-signing-ca"

// signingAuthority is the agent's signing CA, loaded once and shared by the workers.
type signingAuthority struct {
	mu   sync.Mutex
	auth *signing.Authority
	// secret is the last stored state, for optimistic concurrency.
	secret *corev1.Secret
}

// authority loads the signing CA from its Secret, or creates and stores a new one. Callers hold
// im.signer.mu.
func (im *Importer) authority(ctx context.Context) (*signing.Authority, error) {
	s := &im.signer
	if s.auth != nil {
		return s.auth, nil
	}
	ns := im.cfg.AgentNamespace
	cfg := im.cfg.Signing
	cfg.Environment = im.cfg.Environment
	secrets := im.cfg.Kube.CoreV1().Secrets(ns)
	sec, err := secrets.Get(ctx, SigningCASecretName, metav1.GetOptions{})
	switch {
	case err == nil:
		a, err := signing.Load(cfg, sec.Data)
		if err != nil {
			return nil, fmt.Errorf("failed to load the signing CA from Secret %s/%s: %w", ns, SigningCASecretName, err)
		}
		s.auth, s.secret = a, sec
		return a, nil
	case !apierrors.IsNotFound(err):
		return nil, fmt.Errorf("failed to read Secret %s/%s: %w", ns, SigningCASecretName, err)
	}
	a, err := signing.New(cfg, im.cfg.Now())
	if err != nil {
		return nil, err
	}
	data, err := a.Data()
	if err != nil {
		return nil, err
	}
	sec = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: SigningCASecretName, Namespace: ns,
		Labels: map[string]string{cache.ManagedByLabel: cache.ManagedByValue}}, Data: data}
	if sec, err = secrets.Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		// Another leader may have created it meanwhile: the next pass loads it.
		return nil, fmt.Errorf("failed to create Secret %s/%s: %w", ns, SigningCASecretName, err)
	}
	im.log.Info("signing CA created", "secret", ns+"/"+SigningCASecretName, "fingerprint", pemutil.Fingerprint(a.ActiveCA()))
	s.auth, s.secret = a, sec
	return a, nil
}

// tickSigning advances the signing CA rotation, takes up a rotation request (rotatesigning.go)
// and stores a change; every local Elasticsearch is then reconciled, so that peers get the new
// bundle and certificates are reissued.
func (im *Importer) tickSigning(ctx context.Context) error {
	s := &im.signer
	s.mu.Lock()
	defer s.mu.Unlock()
	req, err := im.signingRequestTakeUp(ctx) // rotatesigning.go
	if err != nil || s.auth == nil {
		return err // s.auth is loaded (or created) by the first 9.3+ Elasticsearch with a link
	}
	a := s.auth
	now := im.cfg.Now()
	staged := false
	if req.id != "" {
		if staged, err = a.RotateNow(req.id, now); err != nil {
			return err
		}
	}
	changed, err := a.Tick(now, func() bool { return im.bundleTrusted(a.TrustBundle(now)) })
	if err != nil {
		return err
	}
	if changed || staged {
		if err := im.storeSigning(ctx); err != nil {
			return err
		}
		im.log.Info("signing CA rotation advanced", "active", pemutil.Fingerprint(a.ActiveCA()), "request", req.id)
		im.enqueueAll(trigSigning)
	}
	return im.reportSigningRotation(ctx, req, a) // rotatesigning.go
}

// storeSigning writes the signing CA state to its Secret. Callers hold im.signer.mu.
func (im *Importer) storeSigning(ctx context.Context) error {
	s := &im.signer
	data, err := s.auth.Data()
	if err != nil {
		return err
	}
	sec := s.secret.DeepCopy()
	sec.Data = data
	out, err := im.cfg.Kube.CoreV1().Secrets(sec.Namespace).Update(ctx, sec, metav1.UpdateOptions{})
	if err != nil {
		s.auth, s.secret = nil, nil // reload the stored state on the next pass
		return fmt.Errorf("failed to store the signing CA in Secret %s/%s: %w", sec.Namespace, sec.Name, err)
	}
	s.secret = out
	return nil
}

// bundleTrusted reports whether every peer that requires strong identity trusts every CA of
// bundle: then a staged CA may start issuing.
func (im *Importer) bundleTrusted(bundle []byte) bool {
	certs, err := pemutil.ParseCertificates(bundle, pemutil.Limits{})
	if err != nil {
		return false
	}
	im.mu.Lock()
	defer im.mu.Unlock()
	for _, r := range im.answers {
		c := r.creds
		if r.removed || c == nil || !c.GetStrongIdentity() {
			continue
		}
		for _, ca := range certs {
			if !slices.Contains(c.GetSigningTrustedFingerprints(), pemutil.Fingerprint(ca)) {
				return false
			}
		}
	}
	return true
}

// signingRequest is what an import request of a local Elasticsearch says about signing: the CA
// bundle and subject, or nothing below 9.3.
func (im *Importer) signingRequest(ctx context.Context, es *unstructured.Unstructured) (bundle []byte, subject string) {
	if es == nil || !supportsSigning(es) {
		return nil, ""
	}
	s := &im.signer
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := im.authority(ctx)
	if err != nil {
		im.log.Warn("signing CA unavailable", "error", err)
		return nil, ""
	}
	return a.TrustBundle(im.cfg.Now()), a.Subject(es.GetNamespace(), es.GetName()).String()
}

func supportsSigning(es *unstructured.Unstructured) bool {
	version, _, _ := unstructured.NestedString(es.Object, "spec", "version")
	ok, _ := signing.Supported(version)
	return ok
}

// ensureSigningSecret keeps <es>-ecklink-signing holding a current signing certificate, and
// returns the subject, the fingerprint of the CA that issued it and when to renew it.
func (im *Importer) ensureSigningSecret(ctx context.Context, es *unstructured.Unstructured) (subject, caFingerprint string, renew time.Time, err error) {
	s := &im.signer
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := im.authority(ctx)
	if err != nil {
		return "", "", time.Time{}, err
	}
	ns, name := es.GetNamespace(), wiring.SigningSecretName(es.GetName())
	subj := a.Subject(es.GetNamespace(), es.GetName())
	// From the informer cache: an Elasticsearch whose links do not use strong identity pays no
	// API call for its signing certificate on each pass.
	sec, exists := im.cachedSecret(ns, name)
	now := im.cfg.Now()
	if exists && !a.NeedsRenewal(sec.Data[corev1.TLSCertKey], subj, now) {
		return subj.String(), pemutil.Fingerprint(a.ActiveCA()), renewalOf(sec.Data[corev1.TLSCertKey]), nil
	}
	certPEM, keyPEM, err := a.Issue(subj, now)
	if err != nil {
		return "", "", time.Time{}, err
	}
	want := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	if exists {
		want = sec.DeepCopy()
	}
	want.Labels = ownLabels(es.GetName())
	want.Type = corev1.SecretTypeOpaque
	if exists {
		want.Type = sec.Type
	}
	want.Data = map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM}
	if _, err := im.saveSecret(ctx, want, exists); err != nil {
		return "", "", time.Time{}, err
	}
	if exists {
		im.markPods(types.NamespacedName{Namespace: ns, Name: es.GetName()}) // a renewal of a mounted Secret (pods.go)
	}
	im.log.Info("signing certificate issued", "elasticsearch", ns+"/"+es.GetName(), "subject", subj.String(), "renewal", exists)
	return subj.String(), pemutil.Fingerprint(a.ActiveCA()), renewalOf(certPEM), nil
}

// renewalOf is two thirds into the certificate's lifetime (signing.Authority.NeedsRenewal).
func renewalOf(certPEM []byte) time.Time {
	certs, err := pemutil.ParseCertificates(certPEM, pemutil.Limits{})
	if err != nil || len(certs) == 0 {
		return time.Time{}
	}
	c := certs[0]
	return c.NotBefore.Add(c.NotAfter.Sub(c.NotBefore) * 2 / 3)
}

// localSigning is the alias's signing decision on the local side.
type localSigning int

const (
	signKeep localSigning = iota // leave the settings as they are
	signOn                       // point the alias's signing settings at the mounted files
	signOff                      // remove the alias's signing settings
)

// planLocalSigning decides an alias's signing from its credentials: sign once the remote trusts
// the CA that issued the certificate; stop only once the key no longer requires an identity.
func planLocalSigning(c *peerv1.Credentials, caFingerprint string) localSigning {
	switch {
	case c.GetStrongIdentity() && caFingerprint != "" && slices.Contains(c.GetSigningTrustedFingerprints(), caFingerprint):
		return signOn
	case !c.GetStrongIdentity() && !c.GetIdentityRequired():
		return signOff
	}
	return signKeep
}

// ourSigning are the signing settings the agent writes.
var ourSigning = elastic.Signing{Certificate: wiring.SigningCertPath, Key: wiring.SigningKeyPath}

// applySigning brings each alias's signing settings to its plan and records, per alias, the
// subject it signs with. It returns how soon to look again (files not visible yet).
func (im *Importer) applySigning(ctx context.Context, client *elastic.Client, es *unstructured.Unstructured, desired map[string]*linkPlan, current map[string]elastic.RemoteSettings, st *state) (time.Duration, error) {
	st.signingPassRan = true
	for _, r := range st.links {
		r.signingSubject, r.signingWait = "", ""
	}
	if !supportsSigning(es) {
		return 0, nil
	}
	subject, caFP, renew, err := im.ensureSigningSecret(ctx, es)
	if err != nil {
		return 0, err
	}
	var requeue time.Duration
	if !renew.IsZero() {
		requeue = max(renew.Sub(im.cfg.Now()), time.Second)
	}
	for _, alias := range slices.Sorted(maps.Keys(desired)) {
		r := st.link(alias)
		if !r.settingsApplied {
			continue
		}
		have := elastic.SigningOf(current[alias])
		ours := have == ourSigning
		switch planLocalSigning(desired[alias].answer.creds, caFP) {
		case signOn:
			if have != (elastic.Signing{}) && !ours {
				r.signingWait = "the alias has signing settings that ecklink did not write; remove them to let ecklink sign"
				continue
			}
			if !ours {
				if _, err := client.PutSigning(ctx, alias, ourSigning); err != nil {
					if elastic.IsBadRequest(err) {
						// Not visible in every node yet (the mount rolls out or the kubelet syncs).
						requeue = sooner(requeue, im.cfg.Pending)
						r.signingWait = "the signing certificate is not visible in every node yet (the mount rolls out or the kubelet syncs)"
						if v := wiring.SigningVolume(es.GetName()); !wiring.HasVolume(es, v) {
							// Manual wiring: the user mounts it, with the snippet.
							snippet, err := wiring.Snippet(es, v)
							if err != nil {
								return 0, err
							}
							st.snippet = snippet
							r.signingWait = fmt.Sprintf("mount Secret %s (optional) at %s in every node set to let Elasticsearch sign: commit status.wiringSnippet", v.Secret, v.MountPath())
						}
						continue
					}
					return 0, fmt.Errorf("failed to configure signing of remote cluster %s: %w", alias, err)
				}
				im.log.Info("remote cluster requests signed", "elasticsearch", es.GetNamespace()+"/"+es.GetName(), "alias", alias, "subject", subject)
			}
			r.signingSubject = subject
		case signOff:
			if ours {
				if _, err := client.PutSigning(ctx, alias, elastic.Signing{}); err != nil {
					return 0, fmt.Errorf("failed to remove signing of remote cluster %s: %w", alias, err)
				}
				im.log.Info("remote cluster requests no longer signed", "elasticsearch", es.GetNamespace()+"/"+es.GetName(), "alias", alias)
			}
		default:
			if ours {
				r.signingSubject = subject
			}
		}
	}
	return requeue, nil
}

// signingCondition is the RemoteCluster's StrongIdentity condition, nil when the link has none
// (the condition is then removed). It does not count towards Ready: a link that requires strong
// identity is refused by the peer when it cannot have it, which Ready shows.
func signingCondition(c *peerv1.Credentials, subject, wait string) (status metav1.ConditionStatus, reason, msg string, ok bool) {
	switch {
	case c.GetStrongIdentity() && c.GetIdentityRequired() && subject != "":
		return metav1.ConditionTrue, v1alpha1.ReasonStrongIdentityEnforced,
			"requests are signed as " + subject + " and the remote API key accepts only that signer", true
	case c.GetStrongIdentity() && wait != "":
		return metav1.ConditionFalse, v1alpha1.ReasonStrongIdentityPending, "the export requires strong identity: " + wait, true
	case c.GetStrongIdentity() && subject != "":
		return metav1.ConditionFalse, v1alpha1.ReasonStrongIdentityPending,
			"requests are signed as " + subject + "; waiting for the remote to require that signer on the API key", true
	case c.GetStrongIdentity():
		return metav1.ConditionFalse, v1alpha1.ReasonStrongIdentityPending,
			"the export requires strong identity: waiting for the remote Elasticsearch to trust this agent's signing CA", true
	case c.GetIdentityRequired() || subject != "":
		return metav1.ConditionFalse, v1alpha1.ReasonStrongIdentityDisabling,
			"the export no longer requires strong identity: the remote clears the key's identity, then this side stops signing", true
	case c.GetStrongIdentityFallback() != "":
		return metav1.ConditionFalse, v1alpha1.ReasonStrongIdentityUnavailable,
			"the export prefers strong identity, but this link runs without it: " + c.GetStrongIdentityFallback(), true
	}
	return "", "", "", false
}

// setSigningCondition sets or removes the StrongIdentity condition of a link's RemoteCluster.
func setSigningCondition(rc *v1alpha1.RemoteCluster, p *linkPlan, st *state) {
	if !p.desired() || !st.signingPassRan {
		return // no answer or no pass to go by: keep what was reported
	}
	r := st.link(p.id.Alias)
	status, reason, msg, ok := signingCondition(p.answer.creds, r.signingSubject, r.signingWait)
	if ok {
		kube.Set(rc, kube.NewCondition(rc, v1alpha1.ConditionStrongIdentity, status, reason, msg))
		return
	}
	kube.Remove(rc, v1alpha1.ConditionStrongIdentity)
}
