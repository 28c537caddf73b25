package identity

import (
	"context"
	"crypto/x509"
	"fmt"
	"maps"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/ecklink/ecklink/internal/pemutil"
)

// state is the persisted CA state: the active signer, a staged next CA and a retired-but-trusted
// previous CA.
type state struct {
	active     *caPair
	next       *caPair
	nextStaged time.Time
	previous   *x509.Certificate
	// promoted is when the active CA replaced previous (zero if unknown: an older agent wrote
	// the Secret).
	promoted time.Time
}

// bundle lists every CA certificate peers must trust for this agent, active first.
func (s *state) bundle() []*x509.Certificate {
	certs := []*x509.Certificate{s.active.cert}
	if s.next != nil {
		certs = append(certs, s.next.cert)
	}
	if s.previous != nil {
		certs = append(certs, s.previous)
	}
	return certs
}

var objectLabels = map[string]string{
	"app.kubernetes.io/name":       "ecklink",
	"app.kubernetes.io/component":  "agent-identity",
	"app.kubernetes.io/managed-by": "ecklink-agent",
}

func encodeState(s *state) (map[string][]byte, map[string]string, error) {
	data := map[string][]byte{
		KeyCACert: pemutil.EncodeBundle([]*x509.Certificate{s.active.cert}),
		KeyBundle: pemutil.EncodeBundle(s.bundle()),
	}
	var err error
	if data[KeyCAKey], err = pemutil.EncodePrivateKey(s.active.key); err != nil {
		return nil, nil, err
	}
	annotations := map[string]string{}
	if s.next != nil {
		data[KeyNextCert] = pemutil.EncodeBundle([]*x509.Certificate{s.next.cert})
		if data[KeyNextKey], err = pemutil.EncodePrivateKey(s.next.key); err != nil {
			return nil, nil, err
		}
		annotations[AnnotationNextStaged] = s.nextStaged.UTC().Format(time.RFC3339Nano)
	}
	if s.previous != nil {
		data[KeyPreviousCert] = pemutil.EncodeBundle([]*x509.Certificate{s.previous})
		if !s.promoted.IsZero() {
			annotations[AnnotationPromoted] = s.promoted.UTC().Format(time.RFC3339Nano)
		}
	}
	return data, annotations, nil
}

func decodePair(certPEM, keyPEM []byte, what string) (*caPair, error) {
	cert, key, err := pemutil.ParseKeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("failed to load the %s: %w", what, err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("failed to load the %s: the certificate is not a CA", what)
	}
	return &caPair{cert: cert, key: key}, nil
}

func decodeState(sec *corev1.Secret) (*state, error) {
	s := &state{}
	var err error
	if s.active, err = decodePair(sec.Data[KeyCACert], sec.Data[KeyCAKey], "active CA"); err != nil {
		return nil, err
	}
	if len(sec.Data[KeyNextCert]) > 0 {
		if s.next, err = decodePair(sec.Data[KeyNextCert], sec.Data[KeyNextKey], "next CA"); err != nil {
			return nil, err
		}
		s.nextStaged, err = time.Parse(time.RFC3339Nano, sec.Annotations[AnnotationNextStaged])
		if err != nil {
			// Unknown staging time: count the overlap from the next CA's own start.
			s.nextStaged = s.next.cert.NotBefore
		}
	}
	if len(sec.Data[KeyPreviousCert]) > 0 {
		certs, err := pemutil.ParseCertificates(sec.Data[KeyPreviousCert], pemutil.Limits{MaxCertificates: 1})
		if err != nil {
			return nil, fmt.Errorf("failed to parse previous CA certificate: %w", err)
		}
		s.previous = certs[0]
		// Unknown promotion time: the previous CA stays until just before it expires.
		s.promoted, _ = time.Parse(time.RFC3339Nano, sec.Annotations[AnnotationPromoted])
	}
	return s, nil
}

// loadOrCreate reads the CA Secret, creating it with a fresh CA when it does not exist.
func (i *Identity) loadOrCreate(ctx context.Context) (*state, *corev1.Secret, error) {
	secrets := i.cfg.Client.CoreV1().Secrets(i.cfg.Namespace)
	sec, err := secrets.Get(ctx, SecretName, metav1.GetOptions{})
	if err == nil {
		st, err := decodeState(sec)
		if err != nil {
			return nil, nil, fmt.Errorf("failed to load secret %s/%s: %w", i.cfg.Namespace, SecretName, err)
		}
		return st, sec, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, nil, fmt.Errorf("failed to get secret %s/%s: %w", i.cfg.Namespace, SecretName, err)
	}
	ca, err := newCA(i.cfg.Environment, i.cfg.Clock.Now(), i.cfg.CAValidity)
	if err != nil {
		return nil, nil, err
	}
	st := &state{active: ca}
	data, annotations, err := encodeState(st)
	if err != nil {
		return nil, nil, err
	}
	sec = &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: SecretName, Namespace: i.cfg.Namespace, Labels: objectLabels, Annotations: annotations},
		Type:       corev1.SecretTypeOpaque,
		Data:       data,
	}
	created, err := secrets.Create(ctx, sec, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return i.loadOrCreate(ctx) // another writer won the race: use its CA
	}
	if err != nil {
		return nil, nil, fmt.Errorf("failed to create secret %s/%s: %w", i.cfg.Namespace, SecretName, err)
	}
	i.log.Info("created agent CA", "fingerprint", pemutil.Fingerprint(ca.cert), "expires", ca.cert.NotAfter)
	return st, created, nil
}

// persist writes st to the Secret. The in-memory state is authoritative: on a conflict the
// Secret is re-read for its resourceVersion and written again.
func (i *Identity) persist(ctx context.Context, st *state) error {
	data, annotations, err := encodeState(st)
	if err != nil {
		return err
	}
	secrets := i.cfg.Client.CoreV1().Secrets(i.cfg.Namespace)
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := secrets.Get(ctx, SecretName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		upd := cur.DeepCopy()
		upd.Data = data
		if upd.Annotations == nil {
			upd.Annotations = map[string]string{}
		}
		delete(upd.Annotations, AnnotationNextStaged)
		delete(upd.Annotations, AnnotationPromoted)
		maps.Copy(upd.Annotations, annotations)
		_, err = secrets.Update(ctx, upd, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("failed to update secret %s/%s: %w", i.cfg.Namespace, SecretName, err)
	}
	return nil
}

// publish writes the public identity ConfigMap that agentctl reads.
func (i *Identity) publish(ctx context.Context, st *state) error {
	data := map[string]string{
		KeyEnvironment: i.cfg.Environment,
		KeyBundle:      string(pemutil.EncodeBundle(st.bundle())),
		KeyEndpoints:   strings.Join(i.cfg.Endpoints, "\n"),
		KeyPin:         pemutil.SPKIPin(st.active.cert),
	}
	cms := i.cfg.Client.CoreV1().ConfigMaps(i.cfg.Namespace)
	// Replicas start together: a create that loses the race is retried as an update.
	racing := func(err error) bool { return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) }
	err := retry.OnError(retry.DefaultRetry, racing, func() error {
		cur, err := cms.Get(ctx, ConfigMapName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = cms.Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: ConfigMapName, Namespace: i.cfg.Namespace, Labels: objectLabels},
				Data:       data,
			}, metav1.CreateOptions{})
			return err
		}
		if err != nil {
			return err
		}
		if maps.Equal(cur.Data, data) {
			return nil
		}
		upd := cur.DeepCopy()
		upd.Data = data
		_, err = cms.Update(ctx, upd, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("failed to publish configmap %s/%s: %w", i.cfg.Namespace, ConfigMapName, err)
	}
	return nil
}
