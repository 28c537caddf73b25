// Package gitops holds ecklink's GitOps integration files (Argo CD health checks); its test runs
// them as Argo CD does.
package gitops
