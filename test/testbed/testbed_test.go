package testbed

import (
	"context"
	"crypto"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// TestTwoEnvironmentsRotateCAs shows the test bed is real: two independent environments, the real
// ECK operator creating the transport CA Secret and the remote cluster Service in each, and ECK
// rotating the transport CA within three minutes with a 3m validity.
func TestTwoEnvironmentsRotateCAs(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real kube-apiservers and ECK")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	eckOpts := ECKOptions{CACertValidity: 3 * time.Minute, CACertRotateBefore: 2 * time.Minute,
		CertValidity: 3 * time.Minute, CertRotateBefore: 2 * time.Minute}
	start := time.Now()
	envs, err := StartAll(ctx, Options{Name: "west", ECK: eckOpts}, Options{Name: "east", ECK: eckOpts})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("two environments started in %s", time.Since(start).Round(time.Millisecond))
	for _, e := range envs {
		t.Cleanup(func() {
			e.Stop()
			if t.Failed() {
				dumpLogs(t, e)
			}
			_ = os.RemoveAll(e.Dir)
		})
	}

	type state struct {
		env   *Environment
		first CAInfo
	}
	var states []state
	for _, e := range envs {
		if _, err := e.CreateElasticsearch(ctx, Elasticsearch{Namespace: "data", Name: "logs", Version: "9.3.2", RemoteClusterServer: true}); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range envs {
		s, err := e.WaitForSecret(ctx, "data", "logs-es-transport-certs-public", hasKey("ca.crt"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.WaitForService(ctx, "data", "logs-es-remote-cluster"); err != nil {
			t.Fatal(err)
		}
		ca, err := FirstCertificate(s.Data["ca.crt"])
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: transport CA %s %s valid until %s", e.Name, ca.Subject, ca.Fingerprint[:16], ca.NotAfter.Format(time.RFC3339))
		states = append(states, state{env: e, first: ca})
	}
	for _, s := range states {
		deadline, cancel := context.WithTimeout(ctx, 3*time.Minute)
		sec, err := s.env.WaitForSecret(deadline, "data", "logs-es-transport-certs-public", func(sec *corev1.Secret) bool {
			ca, err := FirstCertificate(sec.Data["ca.crt"])
			return err == nil && ca.Fingerprint != s.first.Fingerprint
		})
		cancel()
		if err != nil {
			t.Fatalf("%s: CA did not rotate: %v", s.env.Name, err)
		}
		ca, _ := FirstCertificate(sec.Data["ca.crt"])
		if ca.Subject != s.first.Subject {
			t.Errorf("%s: rotated CA subject %q, want the same subject %q", s.env.Name, ca.Subject, s.first.Subject)
		}
		if !ca.Cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(s.first.Cert.PublicKey) {
			t.Errorf("%s: normal renewal changed the CA key", s.env.Name)
		}
		t.Logf("%s: CA rotated to %s after %s", s.env.Name, ca.Fingerprint[:16], time.Since(start).Round(time.Second))
	}
}

func hasKey(key string) func(*corev1.Secret) bool {
	return func(s *corev1.Secret) bool { return len(s.Data[key]) > 0 }
}

func dumpLogs(t *testing.T, e *Environment) {
	for _, name := range []string{"elastic-operator.log", "kube-apiserver.log"} {
		data, err := os.ReadFile(e.Dir + "/" + name)
		if err != nil {
			continue
		}
		lines := strings.Split(string(data), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		t.Logf("%s %s (tail):\n%s", e.Name, name, strings.Join(lines, "\n"))
	}
}
