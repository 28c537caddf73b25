// Package v1alpha1 holds the ecklink.io/v1alpha1 API: the Kubernetes resources through which
// users pair agents (Peer), offer an Elasticsearch to peers (ClusterExport) and consume a peer's
// export (RemoteCluster).
//
// The agent has no generated clientset: it talks to these resources through the dynamic client
// and converts with runtime.DefaultUnstructuredConverter (see package agent/kube). The CRDs in
// deploy/helm/ecklink/files/crds/ and zz_generated.deepcopy.go are generated from this package by
// `make generate`; the doc comments on fields become the descriptions `kubectl explain` shows.
//
// Every condition type of this API has positive polarity: True is the healthy state.
//
// +kubebuilder:object:generate=true
// +groupName=ecklink.io
package v1alpha1
