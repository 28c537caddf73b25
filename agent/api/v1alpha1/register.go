package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupName is the API group of every ecklink resource.
const GroupName = "ecklink.io"

// Kinds of the ecklink resources.
const (
	KindPeer          = "Peer"
	KindClusterExport = "ClusterExport"
	KindRemoteCluster = "RemoteCluster"
)

// Finalizer is the finalizer the agent puts on the resources whose removal needs cleanup
// (invalidating issued API keys, removing applied settings).
const Finalizer = "ecklink.io/cleanup"

var (
	// SchemeGroupVersion is the group and version of this package's types.
	SchemeGroupVersion = schema.GroupVersion{Group: GroupName, Version: "v1alpha1"}

	// PeerGVR, ClusterExportGVR and RemoteClusterGVR address the resources in the dynamic client.
	PeerGVR          = SchemeGroupVersion.WithResource("peers")
	ClusterExportGVR = SchemeGroupVersion.WithResource("clusterexports")
	RemoteClusterGVR = SchemeGroupVersion.WithResource("remoteclusters")

	// SchemeBuilder registers this package's types in a scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	// AddToScheme adds this package's types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// Resource qualifies a resource name (e.g. "peers") with this API group.
func Resource(resource string) schema.GroupResource {
	return SchemeGroupVersion.WithResource(resource).GroupResource()
}

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(SchemeGroupVersion,
		&Peer{}, &PeerList{},
		&ClusterExport{}, &ClusterExportList{},
		&RemoteCluster{}, &RemoteClusterList{},
	)
	metav1.AddToGroupVersion(s, SchemeGroupVersion)
	return nil
}
