// Package kube holds the Kubernetes plumbing the agent's controllers share: conversion between
// unstructured objects (dynamic client and informers) and the typed ecklink resources, a typed
// client over the dynamic client, condition helpers, an Event recorder that reports condition
// transitions, and client configuration.
//
// The agent has no generated clientset: the dynamic client and dynamic informers serve every
// resource it touches (its own CRDs and ECK's), and this package adds types back where it helps.
package kube

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/cache"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
)

// Scheme knows the built-in Kubernetes types and the ecklink types. It names the kinds of typed
// objects when they are converted or referenced from Events.
var Scheme = newScheme()

// ListKinds maps each ecklink resource to its list kind, as the dynamic fake client needs. Give
// that client a scheme without the typed ecklink kinds, so that it keeps objects unstructured:
// dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), kube.ListKinds, objs...).
var ListKinds = map[schema.GroupVersionResource]string{
	v1alpha1.PeerGVR:          v1alpha1.KindPeer + "List",
	v1alpha1.ClusterExportGVR: v1alpha1.KindClusterExport + "List",
	v1alpha1.RemoteClusterGVR: v1alpha1.KindRemoteCluster + "List",
}

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(fmt.Sprintf("failed to build scheme: %v", err))
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		panic(fmt.Sprintf("failed to build scheme: %v", err))
	}
	return s
}

// ToUnstructured converts a typed object registered in Scheme to an unstructured one, with its
// apiVersion and kind set even when the typed object's TypeMeta is empty.
func ToUnstructured(obj runtime.Object) (*unstructured.Unstructured, error) {
	gvk, err := kindOf(obj)
	if err != nil {
		return nil, err
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, fmt.Errorf("failed to convert %s to unstructured: %w", gvk.Kind, err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetGroupVersionKind(gvk)
	return u, nil
}

// FromUnstructured converts an unstructured object to the typed object T (for example
// v1alpha1.Peer). Fields that T does not know are dropped.
func FromUnstructured[T any](u *unstructured.Unstructured) (*T, error) {
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, out); err != nil {
		return nil, fmt.Errorf("failed to convert %s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
	}
	return out, nil
}

// FromObject converts what a dynamic informer or lister hands out (an *unstructured.Unstructured,
// or a cache.DeletedFinalStateUnknown tombstone of one in delete handlers) to the typed object T.
// A *T is returned as is.
func FromObject[T any](obj any) (*T, error) {
	if tombstone, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tombstone.Obj
	}
	switch o := obj.(type) {
	case *T:
		return o, nil
	case *unstructured.Unstructured:
		return FromUnstructured[T](o)
	default:
		return nil, fmt.Errorf("failed to convert %T: not an unstructured object", obj)
	}
}

// kindOf returns the group, version and kind of a typed object from Scheme, or of an
// unstructured object from its own fields.
func kindOf(obj runtime.Object) (schema.GroupVersionKind, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		return u.GroupVersionKind(), nil
	}
	gvks, _, err := Scheme.ObjectKinds(obj)
	if err != nil {
		return schema.GroupVersionKind{}, fmt.Errorf("failed to find the kind of %T: %w", obj, err)
	}
	return gvks[0], nil
}
