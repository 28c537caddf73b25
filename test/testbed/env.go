// Package testbed starts real ECK environments on one machine: for each, an etcd, a
// kube-apiserver with RBAC and service account tokens, the ECK CRDs, and the real ECK operator.
// Everything runs as child processes that die with the test process.
package testbed

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// OperatorNamespace is where the ECK operator keeps its own objects in every environment.
const OperatorNamespace = "elastic-system"

// ECKOptions are the ECK operator flags a test may set. Zero durations keep ECK's defaults.
type ECKOptions struct {
	// Disabled starts the environment without an operator.
	Disabled           bool
	CACertValidity     time.Duration
	CACertRotateBefore time.Duration
	CertValidity       time.Duration
	CertRotateBefore   time.Duration
}

// Options configure one environment.
type Options struct {
	// Name names the environment in logs and kubeconfig contexts, e.g. "west".
	Name string
	// Dir holds the environment's data, certificates and logs; a new temporary folder if empty.
	Dir string
	ECK ECKOptions
	// Binaries to run; FindBinaries() if zero.
	Binaries Binaries
}

// Environment is one running ECK environment.
type Environment struct {
	Name string
	Dir  string
	// AdminKubeconfig is the path of a kubeconfig for a system:masters client certificate.
	AdminKubeconfig string
	Admin           *rest.Config
	Kube            kubernetes.Interface
	Dynamic         dynamic.Interface

	opts     Options
	pki      *pki
	etcdPort int
	apiPort  int

	mu        sync.Mutex
	etcd      *process
	apiserver *process
	eck       *process
}

// Start starts one environment and waits until the apiserver is ready, the ECK CRDs are
// established and the operator runs.
func Start(ctx context.Context, opts Options) (*Environment, error) {
	if opts.Name == "" {
		return nil, errors.New("invalid options: Name is required")
	}
	if opts.Binaries == (Binaries{}) {
		b, err := FindBinaries()
		if err != nil {
			return nil, err
		}
		opts.Binaries = b
	}
	if opts.Dir == "" {
		dir, err := os.MkdirTemp("", "ecklink-"+opts.Name+"-")
		if err != nil {
			return nil, fmt.Errorf("failed to create environment folder: %w", err)
		}
		opts.Dir = dir
	}
	e := &Environment{Name: opts.Name, Dir: opts.Dir, opts: opts}
	if err := e.start(ctx); err != nil {
		e.Stop()
		return nil, fmt.Errorf("failed to start environment %s: %w", opts.Name, err)
	}
	return e, nil
}

// StartAll starts environments side by side; on any failure it stops those that started.
func StartAll(ctx context.Context, opts ...Options) ([]*Environment, error) {
	envs := make([]*Environment, len(opts))
	errs := make([]error, len(opts))
	var wg sync.WaitGroup
	for i := range opts {
		wg.Go(func() { envs[i], errs[i] = Start(ctx, opts[i]) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, e := range envs {
			if e != nil {
				e.Stop()
			}
		}
		return nil, err
	}
	return envs, nil
}

func (e *Environment) start(ctx context.Context) error {
	var err error
	if e.pki, err = newPKI(); err != nil {
		return err
	}
	pkiDir := filepath.Join(e.Dir, "pki")
	if err := os.MkdirAll(pkiDir, 0o700); err != nil {
		return fmt.Errorf("failed to create pki folder: %w", err)
	}
	if err := e.pki.write(pkiDir); err != nil {
		return err
	}
	if e.etcdPort, err = freePort(); err != nil {
		return err
	}
	if e.apiPort, err = freePort(); err != nil {
		return err
	}
	if err := e.startEtcd(ctx); err != nil {
		return err
	}
	if err := e.StartAPIServer(ctx); err != nil {
		return err
	}
	if err := e.writeAdminKubeconfig(); err != nil {
		return err
	}
	if err := e.installECKCRDs(ctx); err != nil {
		return err
	}
	if _, err := e.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: OperatorNamespace},
	}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("failed to create namespace %s: %w", OperatorNamespace, err)
	}
	if !e.opts.ECK.Disabled {
		if err := e.StartECK(ctx, e.opts.ECK); err != nil {
			return err
		}
	}
	return nil
}

func (e *Environment) startEtcd(ctx context.Context) error {
	peerPort, err := freePort()
	if err != nil {
		return err
	}
	client := "http://127.0.0.1:" + strconv.Itoa(e.etcdPort)
	peer := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	args := []string{
		"--name=" + e.Name,
		"--data-dir=" + filepath.Join(e.Dir, "etcd"),
		"--listen-client-urls=" + client,
		"--advertise-client-urls=" + client,
		"--listen-peer-urls=" + peer,
		"--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=" + e.Name + "=" + peer,
		"--unsafe-no-fsync",
		"--log-level=warn",
	}
	p, err := startProcess("etcd", e.opts.Binaries.Etcd, args, nil, filepath.Join(e.Dir, "etcd.log"))
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.etcd = p
	e.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	return p.waitFor(ctx, 100*time.Millisecond, func(context.Context) error {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(e.etcdPort), time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// StartAPIServer starts the kube-apiserver (again, after StopAPIServer) on the same port and
// waits until it is ready.
func (e *Environment) StartAPIServer(ctx context.Context) error {
	pkiDir := filepath.Join(e.Dir, "pki")
	args := []string{
		"--etcd-servers=http://127.0.0.1:" + strconv.Itoa(e.etcdPort),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(e.apiPort),
		"--tls-cert-file=" + filepath.Join(pkiDir, "serving.crt"),
		"--tls-private-key-file=" + filepath.Join(pkiDir, "serving.key"),
		"--client-ca-file=" + filepath.Join(pkiDir, "ca.crt"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + filepath.Join(pkiDir, "sa.pub"),
		"--service-account-signing-key-file=" + filepath.Join(pkiDir, "sa.key"),
		"--service-cluster-ip-range=10.0.0.0/24",
		"--authorization-mode=RBAC",
		"--allow-privileged=true",
		"--endpoint-reconciler-type=none",
		"--profiling=false",
		"--v=0",
	}
	p, err := startProcess("kube-apiserver", e.opts.Binaries.KubeAPIServer, args, nil, filepath.Join(e.Dir, "kube-apiserver.log"))
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.apiserver = p
	e.mu.Unlock()
	cfg := e.adminRESTConfig()
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("failed to build admin client: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	return p.waitFor(ctx, 200*time.Millisecond, func(ctx context.Context) error {
		body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil {
			return fmt.Errorf("readyz: %w (%s)", err, body)
		}
		return nil
	})
}

// StopAPIServer stops the kube-apiserver, leaving etcd and the operator running (an API outage).
func (e *Environment) StopAPIServer() {
	e.mu.Lock()
	p := e.apiserver
	e.apiserver = nil
	e.mu.Unlock()
	if p != nil {
		p.stop(10 * time.Second)
	}
}

// APIServerURL is the https address of the apiserver.
func (e *Environment) APIServerURL() string {
	return "https://127.0.0.1:" + strconv.Itoa(e.apiPort)
}

// CAData is the PEM CA that verifies the apiserver's serving certificate.
func (e *Environment) CAData() []byte { return e.pki.caPEM }

// Stop stops the operator, the apiserver and etcd. It is safe to call more than once.
func (e *Environment) Stop() {
	e.mu.Lock()
	procs := []*process{e.eck, e.apiserver, e.etcd}
	e.eck, e.apiserver, e.etcd = nil, nil, nil
	e.mu.Unlock()
	for _, p := range procs {
		if p != nil {
			p.stop(10 * time.Second)
		}
	}
}

// freePort asks the kernel for a free TCP port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("failed to find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// LoopbackIP returns a random address in 127.0.0.0/8 (other than 127.0.0.1), so simulated pods of
// different tests and environments each get their own address with the real ports.
func LoopbackIP() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	if b[0] == 0 {
		b[0] = 1
	}
	return fmt.Sprintf("127.%d.%d.%d", b[0], b[1], 1+b[2]%254)
}
