package v1alpha1_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/test/testbed"
)

const testNamespace = "admission"

// startAPIServer starts a kube-apiserver (no ECK operator) with the generated ecklink CRDs.
func startAPIServer(t *testing.T) *testbed.Environment {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a kube-apiserver; run without -short")
	}
	ctx := t.Context()
	env, err := testbed.Start(ctx, testbed.Options{Name: "crd", Dir: t.TempDir(), ECK: testbed.ECKOptions{Disabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Stop)
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, "deploy", "helm", "ecklink", "files", "crds", "ecklink.io_*.yaml"))
	if err != nil || len(files) != 3 {
		t.Fatalf("want 3 generated CRDs (run `make generate`), found %v (%v)", files, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := env.ApplyCRDs(ctx, data); err != nil {
			t.Fatalf("failed to install %s: %v", filepath.Base(f), err)
		}
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testNamespace}}
	if _, err := env.Kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return env
}

func TestAdmission(t *testing.T) {
	env := startAPIServer(t)
	t.Run("Validation", func(t *testing.T) { testValidation(t, env) })
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, env) })
	t.Run("PrinterColumns", func(t *testing.T) { testPrinterColumns(t, env) })
}

const (
	validPeer = `
apiVersion: ecklink.io/v1alpha1
kind: Peer
metadata: {name: west}
spec:
  environment: west
  caBundle: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
  endpoints: ["agent.west.example.com:8443", "10.0.0.1:443", "[fd00::1]:65535"]
  dial: true
`
	validExport = `
apiVersion: ecklink.io/v1alpha1
kind: ClusterExport
metadata: {name: logs}
spec:
  elasticsearchRef: {name: logs}
  peers: [eu-west, us-east-1]
  access:
    search:
    - names: ["logs-*"]
      query: {term: {tenant: eu}}
      fieldSecurity: {grant: ["*"], except: [secret]}
    replication:
    - names: [archive]
  apiKey: {expiration: 2160h, rotateBefore: 720h}
  proxyAddress: logs.example.com:9443
`
	validRemote = `
apiVersion: ecklink.io/v1alpha1
kind: RemoteCluster
metadata: {name: eu-logs}
spec:
  elasticsearchRef: {name: ccs}
  alias: eu-logs_1
  peer: eu-west
  export: {namespace: elastic, name: logs}
  skipUnavailable: true
`
)

// admissionCase creates base with the changes at paths applied (a nil value deletes the field) and
// expects acceptance when field is empty, else a rejection naming field (and containing msg).
type admissionCase struct {
	name    string
	base    string
	changes map[string]any
	field   string
	msg     string
}

func testValidation(t *testing.T, env *testbed.Environment) {
	cases := []admissionCase{
		{name: "valid peer", base: validPeer},
		{name: "valid export", base: validExport},
		{name: "valid export certificate", base: validExport, changes: map[string]any{
			"spec.model": "certificate", "spec.access": nil, "spec.apiKey": nil}},
		{name: "valid export replication via service", base: validExport, changes: map[string]any{
			"spec.access":       map[string]any{"replication": []any{map[string]any{"names": []any{"a"}}}},
			"spec.proxyAddress": nil, "spec.service": map[string]any{"name": "logs-es-remote-cluster-lb"}}},
		{name: "valid export ipv6 never expiring", base: validExport, changes: map[string]any{
			"spec.proxyAddress": "[2001:db8::1]:9443", "spec.apiKey": nil}},
		{name: "valid export strong identity required", base: validExport, changes: map[string]any{"spec.strongIdentity": "Required"}},
		{name: "valid export certificate strong identity disabled", base: validExport, changes: map[string]any{
			"spec.model": "certificate", "spec.access": nil, "spec.apiKey": nil, "spec.strongIdentity": "Disabled"}},
		{name: "valid remote", base: validRemote},
		{name: "valid remote one-letter alias manual", base: validRemote, changes: map[string]any{
			"spec.alias": "A", "spec.wiring": "manual"}},

		{name: "alias with dot", base: validRemote, changes: map[string]any{"spec.alias": "bad.alias"}, field: "spec.alias"},
		{name: "alias with space", base: validRemote, changes: map[string]any{"spec.alias": "a b"}, field: "spec.alias"},
		{name: "alias with colon", base: validRemote, changes: map[string]any{"spec.alias": "x:y"}, field: "spec.alias"},
		{name: "alias starting with dash", base: validRemote, changes: map[string]any{"spec.alias": "-a"}, field: "spec.alias"},
		{name: "alias too long", base: validRemote, changes: map[string]any{"spec.alias": strings.Repeat("a", 64)}, field: "spec.alias"},
		{name: "alias missing", base: validRemote, changes: map[string]any{"spec.alias": nil}, field: "spec.alias"},
		{name: "remote bad peer", base: validRemote, changes: map[string]any{"spec.peer": "Eu_West"}, field: "spec.peer"},
		{name: "remote missing elasticsearchRef", base: validRemote, changes: map[string]any{"spec.elasticsearchRef": nil}, field: "spec.elasticsearchRef"},
		{name: "remote missing export namespace", base: validRemote, changes: map[string]any{"spec.export.namespace": nil}, field: "spec.export.namespace"},
		{name: "remote unknown wiring", base: validRemote, changes: map[string]any{"spec.wiring": "auto"}, field: "spec.wiring"},
		{name: "valid remote certificate model", base: validRemote, changes: map[string]any{"spec.model": "certificate"}},
		{name: "remote unknown model", base: validRemote, changes: map[string]any{"spec.model": "token"}, field: "spec.model"},

		{name: "empty access", base: validExport, changes: map[string]any{"spec.access": map[string]any{}},
			field: "spec.access", msg: "access must grant search or replication"},
		{name: "empty search", base: validExport, changes: map[string]any{"spec.access": map[string]any{"search": []any{}}},
			field: "spec.access", msg: "access must grant search or replication"},
		{name: "missing access with model apiKey", base: validExport, changes: map[string]any{"spec.model": "apiKey", "spec.access": nil},
			field: "spec.access", msg: "access is required when model is apiKey"},
		{name: "missing access with default model", base: validExport, changes: map[string]any{"spec.access": nil},
			field: "spec.access", msg: "access is required when model is apiKey"},
		{name: "access with model certificate", base: validExport, changes: map[string]any{"spec.model": "certificate", "spec.apiKey": nil},
			field: "spec.access", msg: "access applies only to model apiKey"},
		{name: "unknown strongIdentity", base: validExport, changes: map[string]any{"spec.strongIdentity": "required"}, field: "spec.strongIdentity"},
		{name: "strongIdentity with model certificate", base: validExport, changes: map[string]any{
			"spec.model": "certificate", "spec.access": nil, "spec.apiKey": nil, "spec.strongIdentity": "Required"},
			field: "spec.strongIdentity", msg: "strongIdentity applies only to model apiKey"},
		{name: "unknown model", base: validExport, changes: map[string]any{"spec.model": "token"}, field: "spec.model"},
		{name: "search without names", base: validExport, changes: map[string]any{
			"spec.access": map[string]any{"search": []any{map[string]any{"names": []any{}}}}}, field: "spec.access.search[0].names"},
		{name: "bad peer name", base: validExport, changes: map[string]any{"spec.peers": []any{"eu-west", "EU.west"}}, field: "spec.peers[1]"},
		{name: "no peers", base: validExport, changes: map[string]any{"spec.peers": []any{}}, field: "spec.peers"},
		{name: "proxyAddress without port", base: validExport, changes: map[string]any{"spec.proxyAddress": "logs.example.com"}, field: "spec.proxyAddress"},
		{name: "proxyAddress port out of range", base: validExport, changes: map[string]any{"spec.proxyAddress": "logs.example.com:65536"}, field: "spec.proxyAddress"},
		{name: "proxyAddress URL", base: validExport, changes: map[string]any{"spec.proxyAddress": "https://logs.example.com:9443"}, field: "spec.proxyAddress"},
		{name: "proxyAddress and service", base: validExport, changes: map[string]any{"spec.service": map[string]any{"name": "lb"}},
			field: "spec.service", msg: "not both"},
		{name: "export missing elasticsearchRef", base: validExport, changes: map[string]any{"spec.elasticsearchRef": nil}, field: "spec.elasticsearchRef"},
		{name: "expiration in days", base: validExport, changes: map[string]any{"spec.apiKey": map[string]any{"expiration": "90d"}}, field: "spec.apiKey.expiration"},
		{name: "rotateBefore without expiration, shorter than the default", base: validExport, changes: map[string]any{"spec.apiKey": map[string]any{"rotateBefore": "1h"}}},
		{name: "rotateBefore without expiration, past the default", base: validExport, changes: map[string]any{"spec.apiKey": map[string]any{"rotateBefore": "2200h"}},
			field: "spec.apiKey.rotateBefore", msg: "rotateBefore must be shorter than expiration (default 2160h)"},
		{name: "valid never-expiring keys", base: validExport, changes: map[string]any{"spec.apiKey": map[string]any{"neverExpire": true}}},
		{name: "neverExpire with expiration", base: validExport, changes: map[string]any{"spec.apiKey": map[string]any{"neverExpire": true, "expiration": "1h"}},
			field: "spec.apiKey.neverExpire", msg: "neverExpire excludes expiration and rotateBefore"},
		{name: "valid export with grants only", base: validExport, changes: map[string]any{"spec.peers": nil,
			"spec.grants": []any{map[string]any{"peer": "eu-west", "namespaces": []any{"apps", "search"}, "elasticsearch": []any{"ccs"}},
				map[string]any{"peer": "us-east-1", "namespaces": []any{"apps"}}}}},
		{name: "valid export with peers and grants of others", base: validExport, changes: map[string]any{
			"spec.grants": []any{map[string]any{"peer": "ap-south", "namespaces": []any{"apps"}}}}},
		{name: "neither peers nor grants", base: validExport, changes: map[string]any{"spec.peers": nil},
			field: "spec.peers", msg: "name the environments this export serves"},
		{name: "a peer in peers and grants", base: validExport, changes: map[string]any{
			"spec.grants": []any{map[string]any{"peer": "eu-west", "namespaces": []any{"apps"}}}},
			field: "spec.grants", msg: "not in both"},
		{name: "grant without namespaces", base: validExport, changes: map[string]any{"spec.peers": nil,
			"spec.grants": []any{map[string]any{"peer": "ap-south"}}}, field: "spec.grants[0].namespaces"},
		{name: "grant with a bad namespace", base: validExport, changes: map[string]any{"spec.peers": nil,
			"spec.grants": []any{map[string]any{"peer": "ap-south", "namespaces": []any{"Apps"}}}}, field: "spec.grants[0].namespaces[0]"},
		{name: "two grants of one peer", base: validExport, changes: map[string]any{"spec.peers": nil,
			"spec.grants": []any{map[string]any{"peer": "ap-south", "namespaces": []any{"a"}}, map[string]any{"peer": "ap-south", "namespaces": []any{"b"}}}},
			field: "spec.grants[1]"},
		{name: "zero expiration", base: validExport, changes: map[string]any{"spec.apiKey": map[string]any{"expiration": "0s"}},
			field: "spec.apiKey.expiration", msg: "expiration must be positive"},
		{name: "rotateBefore past expiration", base: validExport, changes: map[string]any{"spec.apiKey": map[string]any{"expiration": "1h", "rotateBefore": "2h"}},
			field: "spec.apiKey.rotateBefore"},

		{name: "peer name differs from environment", base: validPeer, changes: map[string]any{"metadata.name": "east"},
			field: "spec.environment", msg: "metadata.name must equal spec.environment"},
		{name: "peer dials without endpoints", base: validPeer, changes: map[string]any{"spec.endpoints": nil},
			field: "spec.endpoints", msg: "endpoints are required when dial is true"},
		{name: "peer endpoint without port", base: validPeer, changes: map[string]any{"spec.endpoints": []any{"agent.west"}}, field: "spec.endpoints[0]"},
		{name: "peer missing caBundle", base: validPeer, changes: map[string]any{"spec.caBundle": nil}, field: "spec.caBundle"},
	}
	client := env.Dynamic
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := decode(t, tc.base)
			if obj.GetKind() != v1alpha1.KindPeer {
				// Unique names let every valid case be created for real, not only dry-run.
				obj.SetName(obj.GetName() + "-" + string(rune('a'+i%26)) + strings.Repeat("x", i/26))
			}
			for path, v := range tc.changes {
				fields := strings.Split(path, ".")
				if v == nil {
					unstructured.RemoveNestedField(obj.Object, fields...)
				} else if err := unstructured.SetNestedField(obj.Object, v, fields...); err != nil {
					t.Fatal(err)
				}
			}
			_, err := client.Resource(gvr(obj)).Namespace(testNamespace).Create(t.Context(), obj, metav1.CreateOptions{})
			if tc.field == "" {
				if err != nil {
					t.Fatalf("want accepted, got: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("want rejected naming %s, got accepted", tc.field)
			}
			t.Logf("rejected: %v", err)
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want Invalid, got: %v", err)
			}
			if !namesField(err, tc.field) {
				t.Errorf("want a cause naming %s, got: %v", tc.field, err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("want message containing %q, got: %v", tc.msg, err)
			}
		})
	}
}

// namesField reports whether a cause of the Invalid error is about field (or one of its items).
// Rules on the object's root (which can see metadata.name) have no field; their message names it.
func namesField(err error, field string) bool {
	var status *apierrors.StatusError
	if !errors.As(err, &status) || status.ErrStatus.Details == nil {
		return false
	}
	for _, c := range status.ErrStatus.Details.Causes {
		if c.Field == field || strings.HasPrefix(c.Field, field+"[") ||
			(c.Field == "<nil>" && strings.Contains(c.Message, field)) {
			return true
		}
	}
	return false
}

func decode(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	obj := &unstructured.Unstructured{}
	if err := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(doc), 4096).Decode(&obj.Object); err != nil {
		t.Fatal(err)
	}
	return obj
}

func gvr(obj *unstructured.Unstructured) schema.GroupVersionResource {
	switch obj.GetKind() {
	case v1alpha1.KindPeer:
		return v1alpha1.PeerGVR
	case v1alpha1.KindClusterExport:
		return v1alpha1.ClusterExportGVR
	default:
		return v1alpha1.RemoteClusterGVR
	}
}

// testRoundTrip stores fully populated typed objects, spec and status, and reads them back equal:
// the CRD schemas keep every field the Go types have (nothing is pruned) and apply the defaults.
func testRoundTrip(t *testing.T, env *testbed.Environment) {
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	ca := []v1alpha1.CertificateInfo{{Fingerprint: "ab12", Subject: "CN=west", NotAfter: &now}}
	conds := []metav1.Condition{
		{Type: v1alpha1.ConditionConnected, Status: metav1.ConditionTrue, ObservedGeneration: 1,
			LastTransitionTime: now, Reason: v1alpha1.ReasonStreamEstablished},
		{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, ObservedGeneration: 1,
			LastTransitionTime: now, Reason: v1alpha1.ReasonWaitingForPeer, Message: "waiting"},
	}
	objs := []runtime.Object{
		&v1alpha1.Peer{
			ObjectMeta: metav1.ObjectMeta{Name: "roundtrip"},
			Spec:       v1alpha1.PeerSpec{Environment: "roundtrip", CABundle: "pem", Endpoints: []string{"a:1"}, Dial: true},
			Status: v1alpha1.PeerStatus{State: v1alpha1.PeerStateActive, Conditions: conds, LastHeartbeat: &now, PeerVersion: "v0.1.0",
				CertificateAuthorities: ca, ObservedGeneration: 1},
		},
		&v1alpha1.ClusterExport{
			ObjectMeta: metav1.ObjectMeta{Name: "roundtrip"},
			Spec: v1alpha1.ClusterExportSpec{
				ElasticsearchRef: v1alpha1.ElasticsearchReference{Name: "logs"},
				Peers:            []string{"west"},
				Grants:           []v1alpha1.ExportGrant{{Peer: "north", Namespaces: []string{"apps"}, Elasticsearch: []string{"ccs"}}},
				Model:            v1alpha1.SecurityModelAPIKey,
				Access: &v1alpha1.CrossClusterAccess{
					Search: []v1alpha1.SearchAccess{{Names: []string{"logs-*"},
						Query:                  &runtime.RawExtension{Raw: []byte(`{"bool":{"filter":[{"term":{"a":1}}]}}`)},
						FieldSecurity:          &v1alpha1.FieldSecurity{Grant: []string{"*"}, Except: []string{"x"}},
						AllowRestrictedIndices: true}},
					Replication: []v1alpha1.ReplicationAccess{{Names: []string{"b"}, AllowRestrictedIndices: true}},
				},
				APIKey:                    &v1alpha1.APIKeySettings{Expiration: &metav1.Duration{Duration: 90 * 24 * time.Hour}, RotateBefore: &metav1.Duration{Duration: time.Hour}},
				Service:                   &v1alpha1.ServiceReference{Name: "lb"},
				StrongIdentity:            v1alpha1.StrongIdentityRequired,
				ServerName:                "logs-es-remote-cluster.elastic.svc",
				EnableRemoteClusterServer: true,
			},
			Status: v1alpha1.ClusterExportStatus{Conditions: conds, ObservedGeneration: 1, ProxyAddress: "1.2.3.4:9443",
				ServerName: "s", Links: []v1alpha1.ExportLink{{Peer: "west", LocalNamespace: "ns", LocalElasticsearch: "ccs",
					Alias: "eu", APIKeyID: "id", Created: &now, Expires: &now, LastAcknowledged: &now, Connected: true, Message: "m"}}},
		},
		&v1alpha1.RemoteCluster{
			ObjectMeta: metav1.ObjectMeta{Name: "roundtrip"},
			Spec: v1alpha1.RemoteClusterSpec{ElasticsearchRef: v1alpha1.ElasticsearchReference{Name: "ccs"}, Alias: "eu",
				Peer: "west", Export: v1alpha1.ExportReference{Namespace: "elastic", Name: "logs"},
				SkipUnavailable: new(false), Wiring: v1alpha1.WiringManual, Model: v1alpha1.SecurityModelCertificate},
			Status: v1alpha1.RemoteClusterStatus{Conditions: conds, ObservedGeneration: 1, Model: v1alpha1.SecurityModelAPIKey,
				ProxyAddress: "p:1", ServerName: "s", RemoteCertificateAuthorities: ca,
				APIKey:   &v1alpha1.AppliedAPIKey{ID: "id", Expiration: &now, AppliedAt: &now},
				LastSync: &now, AppliedSequence: 42, WiringSnippet: "spec: {}"},
		},
	}
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	for _, want := range objs {
		gvks, _, err := scheme.ObjectKinds(want)
		if err != nil {
			t.Fatal(err)
		}
		want.GetObjectKind().SetGroupVersionKind(gvks[0])
		t.Run(gvks[0].Kind, func(t *testing.T) {
			m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(want)
			if err != nil {
				t.Fatal(err)
			}
			u := &unstructured.Unstructured{Object: m}
			client := env.Dynamic.Resource(gvr(u)).Namespace(testNamespace)
			created, err := client.Create(t.Context(), u, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			u.SetResourceVersion(created.GetResourceVersion())
			updated, err := client.UpdateStatus(t.Context(), u, metav1.UpdateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got := newOf(want)
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(updated.Object, got); err != nil {
				t.Fatal(err)
			}
			if !equality.Semantic.DeepEqual(spec(t, got), spec(t, want)) {
				t.Errorf("spec and status changed in the round trip:\n got %s\nwant %s", spec(t, got), spec(t, want))
			}
		})
	}
}

// newOf returns a new, empty object of obj's type.
func newOf(obj runtime.Object) runtime.Object {
	switch obj.(type) {
	case *v1alpha1.Peer:
		return &v1alpha1.Peer{}
	case *v1alpha1.ClusterExport:
		return &v1alpha1.ClusterExport{}
	default:
		return &v1alpha1.RemoteCluster{}
	}
}

// spec renders an object's spec and status as JSON, the parts the round trip must preserve.
func spec(t *testing.T, obj runtime.Object) string {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(map[string]any{"spec": m["spec"], "status": m["status"]})
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// testPrinterColumns checks the CRDs declare the columns and that the apiserver serves them in
// the Table that kubectl get shows, filled from spec and conditions (of the round-trip objects).
func testPrinterColumns(t *testing.T, env *testbed.Environment) {
	want := map[string][]string{
		"peers":          {"Environment", "State", "Connected", "Last-Heartbeat", "Ready", "Reason", "Age"},
		"clusterexports": {"Elasticsearch", "Model", "Peers", "Ready", "Reason", "Age"},
		"remoteclusters": {"Elasticsearch", "Alias", "Peer", "Connected", "Ready", "Reason", "Age"},
	}
	wantCells := map[string][]any{
		"peers":          {"roundtrip", "roundtrip", "Active", "True"},
		"clusterexports": {"roundtrip", "logs", "apiKey", `["west"]`, "False", "WaitingForPeer"},
		"remoteclusters": {"roundtrip", "ccs", "eu", "west", "True", "False", "WaitingForPeer"},
	}
	crdGVR := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	for resource, columns := range want {
		t.Run(resource, func(t *testing.T) {
			crd, err := env.Dynamic.Resource(crdGVR).Get(t.Context(), resource+"."+v1alpha1.GroupName, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
			var declared []string
			for _, c := range versions[0].(map[string]any)["additionalPrinterColumns"].([]any) {
				declared = append(declared, c.(map[string]any)["name"].(string))
			}
			if !slices.Equal(declared, columns) {
				t.Errorf("CRD columns = %v, want %v", declared, columns)
			}
			table := getTable(t.Context(), t, env, resource)
			var served []string
			for _, c := range table.ColumnDefinitions {
				served = append(served, c.Name)
			}
			if !slices.Equal(served, append([]string{"Name"}, columns...)) {
				t.Errorf("served columns = %v, want Name and %v", served, columns)
			}
			i := slices.IndexFunc(table.Rows, func(r metav1.TableRow) bool { return r.Cells[0] == "roundtrip" })
			if i < 0 {
				t.Fatalf("no row for the round-trip object in %d rows", len(table.Rows))
			}
			if cells := table.Rows[i].Cells; !slices.Equal(cells[:len(wantCells[resource])], wantCells[resource]) {
				t.Errorf("cells = %v, want them to start with %v", cells, wantCells[resource])
			}
		})
	}
}

// getTable lists resource as the meta.k8s.io Table that kubectl get renders.
func getTable(ctx context.Context, t *testing.T, env *testbed.Environment, resource string) *metav1.Table {
	t.Helper()
	data, err := env.Kube.Discovery().RESTClient().Get().
		AbsPath("/apis", v1alpha1.GroupName, "v1alpha1", "namespaces", testNamespace, resource).
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	table := &metav1.Table{}
	if err := json.Unmarshal(data, table); err != nil {
		t.Fatal(err)
	}
	return table
}
