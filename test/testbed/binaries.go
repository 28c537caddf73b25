package testbed

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
)

// Binaries locates the test bed's programs built by `make testbed`.
type Binaries struct {
	KubeAPIServer, Etcd, ECKOperator, ECKCRDs string
}

// FindBinaries looks in $ECKLINK_TESTBED_BIN, else in .cache/testbed/bin of the repository that
// holds the working directory, and names what is missing and how to build it.
func FindBinaries() (Binaries, error) {
	dir := os.Getenv("ECKLINK_TESTBED_BIN")
	if dir == "" {
		root, err := RepoRoot()
		if err != nil {
			return Binaries{}, err
		}
		dir = filepath.Join(root, ".cache", "testbed", "bin")
	}
	b := Binaries{
		KubeAPIServer: filepath.Join(dir, "kube-apiserver"),
		Etcd:          filepath.Join(dir, "etcd"),
		ECKOperator:   filepath.Join(dir, "elastic-operator"),
		ECKCRDs:       filepath.Join(dir, "eck-crds.yaml"),
	}
	for _, p := range []string{b.KubeAPIServer, b.Etcd, b.ECKOperator, b.ECKCRDs} {
		if _, err := os.Stat(p); err != nil {
			return Binaries{}, fmt.Errorf("test bed binary %s is missing (run `make testbed`): %w", p, err)
		}
	}
	return b, nil
}

// RepoRoot walks up from the working directory to the directory whose go.mod declares the
// ecklink module.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("failed to get working directory: %w", err)
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(data, []byte("module github.com/ecklink/ecklink\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("failed to find the ecklink repository above the working directory")
		}
		dir = parent
	}
}

// FindECKBinaries is FindBinaries with the operator and CRDs of another ECK version that `make
// testbed` builds beside the main one: bin/elastic-operator-<version> and
// bin/eck-crds-<version>.yaml (version as "3.2"). It names what is missing and how to build it.
func FindECKBinaries(version string) (Binaries, error) {
	b, err := FindBinaries()
	if err != nil {
		return Binaries{}, err
	}
	dir := filepath.Dir(b.ECKOperator)
	b.ECKOperator = filepath.Join(dir, "elastic-operator-"+version)
	b.ECKCRDs = filepath.Join(dir, "eck-crds-"+version+".yaml")
	for _, p := range []string{b.ECKOperator, b.ECKCRDs} {
		if _, err := os.Stat(p); err != nil {
			return Binaries{}, fmt.Errorf("test bed binary %s of ECK %s is missing (run `make testbed`): %w", p, version, err)
		}
	}
	return b, nil
}
