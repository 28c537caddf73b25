package kube

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
)

func testExport() *v1alpha1.ClusterExport {
	return &v1alpha1.ClusterExport{
		ObjectMeta: metav1.ObjectMeta{Namespace: "elastic", Name: "logs", Generation: 3},
		Spec: v1alpha1.ClusterExportSpec{
			ElasticsearchRef: v1alpha1.ElasticsearchReference{Name: "logs"},
			Peers:            []string{"west"},
			Model:            v1alpha1.SecurityModelAPIKey,
			Access: &v1alpha1.CrossClusterAccess{Search: []v1alpha1.SearchAccess{{
				Names: []string{"logs-*"},
				Query: &runtime.RawExtension{Raw: []byte(`{"term":{"tenant":"eu"}}`)},
			}}},
			APIKey: &v1alpha1.APIKeySettings{Expiration: &metav1.Duration{Duration: 90 * 24 * time.Hour}},
		},
	}
}

func TestConversionRoundTrip(t *testing.T) {
	now := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	objs := []runtime.Object{
		&v1alpha1.Peer{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ecklink", Name: "west"},
			Spec:       v1alpha1.PeerSpec{Environment: "west", CABundle: "pem", Endpoints: []string{"a:1"}, Dial: true},
			Status:     v1alpha1.PeerStatus{LastHeartbeat: &now, CertificateAuthorities: []v1alpha1.CertificateInfo{{Fingerprint: "ab", NotAfter: &now}}},
		},
		testExport(),
		&v1alpha1.RemoteCluster{
			ObjectMeta: metav1.ObjectMeta{Namespace: "search", Name: "eu"},
			Spec: v1alpha1.RemoteClusterSpec{Alias: "eu", Peer: "west", SkipUnavailable: new(bool),
				Export: v1alpha1.ExportReference{Namespace: "elastic", Name: "logs"}},
			Status: v1alpha1.RemoteClusterStatus{AppliedSequence: 7, APIKey: &v1alpha1.AppliedAPIKey{ID: "k", AppliedAt: &now}},
		},
	}
	for _, obj := range objs {
		u, err := ToUnstructured(obj)
		if err != nil {
			t.Fatal(err)
		}
		gvk := u.GroupVersionKind()
		if gvk.GroupVersion() != v1alpha1.SchemeGroupVersion || gvk.Kind == "" {
			t.Errorf("%T: apiVersion/kind = %v, want ecklink.io/v1alpha1 and the kind", obj, gvk)
		}
		var got runtime.Object
		switch obj.(type) {
		case *v1alpha1.Peer:
			got, err = FromUnstructured[v1alpha1.Peer](u)
		case *v1alpha1.ClusterExport:
			got, err = FromUnstructured[v1alpha1.ClusterExport](u)
		case *v1alpha1.RemoteCluster:
			got, err = FromUnstructured[v1alpha1.RemoteCluster](u)
		}
		if err != nil {
			t.Fatal(err)
		}
		want := obj.DeepCopyObject()
		want.GetObjectKind().SetGroupVersionKind(gvk)
		if !equality.Semantic.DeepEqual(got, want) {
			t.Errorf("round trip of %s changed it:\n got %+v\nwant %+v", gvk.Kind, got, want)
		}
	}
}

func TestConversionKeepsFreeFormQuery(t *testing.T) {
	u, err := ToUnstructured(testExport())
	if err != nil {
		t.Fatal(err)
	}
	search, _, _ := unstructured.NestedSlice(u.Object, "spec", "access", "search")
	query := search[0].(map[string]any)["query"]
	want := map[string]any{"term": map[string]any{"tenant": "eu"}}
	if !equality.Semantic.DeepEqual(query, want) {
		t.Errorf("query = %#v, want the JSON object %#v", query, want)
	}
	if exp, _, _ := unstructured.NestedString(u.Object, "spec", "apiKey", "expiration"); exp != "2160h0m0s" {
		t.Errorf("expiration = %q, want 2160h0m0s", exp)
	}
}

func TestFromObject(t *testing.T) {
	u, err := ToUnstructured(testExport())
	if err != nil {
		t.Fatal(err)
	}
	typed := testExport()
	cases := []struct {
		name    string
		in      any
		wantErr bool
	}{
		{name: "unstructured", in: u},
		{name: "tombstone", in: cache.DeletedFinalStateUnknown{Key: "elastic/logs", Obj: u}},
		{name: "typed", in: typed},
		{name: "wrong type", in: "elastic/logs", wantErr: true},
		{name: "tombstone of wrong type", in: cache.DeletedFinalStateUnknown{Obj: 3}, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FromObject[v1alpha1.ClusterExport](tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatal("want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Name != "logs" || got.Spec.Access == nil {
				t.Errorf("got %+v", got)
			}
		})
	}
}

func TestToUnstructuredRejectsUnknownTypes(t *testing.T) {
	type notRegistered struct{ v1alpha1.Peer }
	if _, err := ToUnstructured(&notRegistered{}); err == nil {
		t.Fatal("want an error for a type outside Scheme")
	}
}
