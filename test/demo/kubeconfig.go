package main

import (
	"fmt"
	"path/filepath"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/ecklink/ecklink/test/testbed"
)

// mergeKubeconfigs writes one kubeconfig holding every environment's admin context, as an
// operator's kubeconfig holds their clusters.
func mergeKubeconfigs(dir string, envs ...*testbed.Environment) (string, error) {
	merged := clientcmdapi.NewConfig()
	for _, e := range envs {
		cfg, err := clientcmd.LoadFromFile(e.AdminKubeconfig)
		if err != nil {
			return "", fmt.Errorf("failed to read kubeconfig of %s: %w", e.Name, err)
		}
		for k, v := range cfg.Clusters {
			merged.Clusters[k] = v
		}
		for k, v := range cfg.AuthInfos {
			merged.AuthInfos[k] = v
		}
		for k, v := range cfg.Contexts {
			merged.Contexts[k] = v
		}
	}
	merged.CurrentContext = envs[0].Name
	path := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*merged, path); err != nil {
		return "", fmt.Errorf("failed to write kubeconfig: %w", err)
	}
	return path, nil
}
