package ctl

import (
	"bytes"
	"context"
	"crypto/x509"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ecklink/ecklink/agent/identity"
	"github.com/ecklink/ecklink/agent/internal/testenv/fakekube"
	"github.com/ecklink/ecklink/agent/kube"
	"github.com/ecklink/ecklink/internal/pemutil"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// testNow is the fixed clock of the golden files.
var testNow = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)

const agentNS = "ecklink"

// readPEM reads a certificate of testdata.
func readPEM(t *testing.T, name string) (*x509.Certificate, []byte) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".pem"))
	if err != nil {
		t.Fatal(err)
	}
	certs, err := pemutil.ParseCertificates(b, pemutil.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return certs[0], b
}

// fakeEnv is an environment backed by fake API clients.
func fakeEnv(t *testing.T, kubeObjs []runtime.Object, crdObjs ...runtime.Object) *env {
	t.Helper()
	crds, err := kube.NewClient(kube.ClientConfig{Dynamic: fakekube.Dynamic(t, crdObjs)})
	if err != nil {
		t.Fatal(err)
	}
	return &env{namespace: agentNS, kube: fake.NewClientset(kubeObjs...), crds: crds}
}

// identityConfigMap is an agent's identity ConfigMap with the CAs of testdata.
func identityConfigMap(t *testing.T, envName string, endpoints []string, cas ...string) *corev1.ConfigMap {
	t.Helper()
	var bundle []byte
	var pin string
	for i, name := range cas {
		c, b := readPEM(t, name)
		bundle = append(bundle, b...)
		if i == 0 {
			pin = pemutil.SPKIPin(c)
		}
	}
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: identity.ConfigMapName, Namespace: agentNS},
		Data: map[string]string{identity.KeyEnvironment: envName, identity.KeyBundle: string(bundle), identity.KeyPin: pin,
			identity.KeyEndpoints: strings.Join(endpoints, "\n")},
	}
}

// runCtl runs agentctl in-process with the environments by context name ("" is --context's
// default) and returns the exit code, stdout and stderr.
func runCtl(t *testing.T, envs map[string]*env, args ...string) (int, string, string) {
	t.Helper()
	return runCtlNow(t, envs, func() time.Time { return testNow }, args...)
}

// runCtlNow is runCtl with the clock now (time.Now where real certificates are checked).
func runCtlNow(t *testing.T, envs map[string]*env, now func() time.Time, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	o := Options{Out: &out, Err: &errb, In: strings.NewReader(""), Now: now,
		connect: func(_, context, namespace string) (*env, error) {
			e, ok := envs[context]
			if !ok {
				t.Fatalf("no fake environment for context %q", context)
			}
			e.context = context
			return e, nil
		}}
	cmd := NewCommand(o)
	cmd.SetArgs(args)
	code := Execute(context.Background(), cmd)
	return code, out.String(), errb.String()
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run go test -update after checking):\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}

func mt(t time.Time) *metav1.Time { return &metav1.Time{Time: t} }

func contains(s, sub string) bool { return strings.Contains(s, sub) }
