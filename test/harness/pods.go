package harness

import "github.com/ecklink/ecklink/test/esim/pod"

// Pods returns every simulated Elasticsearch pod of the cluster, by "namespace/name".
func (c *Cluster) Pods() map[string]*pod.Pod {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]*pod.Pod, len(c.pods))
	for k, p := range c.pods {
		out[k] = p
	}
	return out
}

// Endpoints returns the REST endpoint of every simulated pod, as the agent's
// elasticsearchEndpoints ("namespace/name" -> https://host:port).
func (c *Cluster) Endpoints() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]string, len(c.endpoints))
	for k, v := range c.endpoints {
		out[k] = v
	}
	return out
}
