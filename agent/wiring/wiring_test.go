package wiring

import (
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func es(t *testing.T, spec string) *unstructured.Unstructured {
	t.Helper()
	var obj map[string]any
	doc := "apiVersion: elasticsearch.k8s.elastic.co/v1\nkind: Elasticsearch\nmetadata: {name: ccs, namespace: apps}\nspec:\n" + spec
	if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: obj}
}

func TestApplyAndRemoveRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		spec string
		// check inspects the wired object.
		check func(t *testing.T, wired *unstructured.Unstructured)
	}{
		{
			name: "plain",
			spec: "  version: 9.3.2\n  nodeSets:\n  - name: default\n    count: 3\n",
			check: func(t *testing.T, w *unstructured.Unstructured) {
				cas := nodeSetConfig(t, w, 0)[keySSLCAs]
				want := toAnyList(append(append([]string{}, ECKClientCAs...), CAFilePath))
				if !reflect.DeepEqual(cas, want) {
					t.Errorf("certificate_authorities = %v, want %v", cas, want)
				}
			},
		},
		{
			name: "user nested config and own CA list",
			spec: `  version: 9.3.2
  nodeSets:
  - name: hot
    config:
      node.roles: [master, data]
      xpack:
        security:
          remote_cluster_client:
            ssl:
              enabled: true
              certificate_authorities: [my-certs/other.crt]
`,
			check: func(t *testing.T, w *unstructured.Unstructured) {
				cfg := nodeSetConfig(t, w, 0)
				if _, flat := cfg[keySSLEnabled]; flat {
					t.Error("ssl.enabled added although the user set it nested")
				}
				loc := lookup(cfg, keySSLCAs)
				got, _ := stringList(loc.get())
				if !reflect.DeepEqual(got, []string{"my-certs/other.crt", CAFilePath}) {
					t.Errorf("user list = %v, want the user's entry then ours", got)
				}
			},
		},
		{
			name: "user flat string CA and disabled ssl, other volumes and secure settings",
			spec: `  version: 8.19.2
  secureSettings:
  - secretName: user-keystore
  nodeSets:
  - name: a
    config:
      xpack.security.remote_cluster_client.ssl.enabled: false
      xpack.security.remote_cluster_client.ssl.certificate_authorities: user/ca.crt
    podTemplate:
      spec:
        containers:
        - name: elasticsearch
          env: [{name: X, value: "1"}]
          volumeMounts: [{name: extra, mountPath: /extra}]
        - name: sidecar
        volumes: [{name: extra, emptyDir: {}}]
  - name: b
`,
			check: func(t *testing.T, w *unstructured.Unstructured) {
				secure, _, _ := unstructured.NestedSlice(w.Object, "spec", "secureSettings")
				if len(secure) != 2 {
					t.Errorf("secureSettings = %v, want the user's and ours", secure)
				}
				if !isTrue(nodeSetConfig(t, w, 0)[keySSLEnabled]) {
					t.Error("ssl.enabled not turned on")
				}
				if nodeSetConfig(t, w, 1)[keySSLCAs] == nil {
					t.Error("second node set not wired")
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := es(t, tt.spec)
			wired := orig.DeepCopy()
			changes, err := Apply(wired)
			if err != nil {
				t.Fatal(err)
			}
			if len(changes) == 0 {
				t.Fatal("Apply changed nothing")
			}
			tt.check(t, wired)
			if again, err := Apply(wired); err != nil || len(again) != 0 {
				t.Fatalf("second Apply = %v, %v; want no change", again, err)
			}
			if missing, _ := Missing(wired); len(missing) != 0 {
				t.Errorf("Missing after Apply = %v", missing)
			}
			if snippet, _ := Snippet(wired); snippet != "" {
				t.Errorf("Snippet of a wired resource = %q, want empty", snippet)
			}
			if _, err := Remove(wired); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(wired.Object, orig.Object) {
				a, _ := yaml.Marshal(orig.Object)
				b, _ := yaml.Marshal(wired.Object)
				t.Errorf("Remove did not restore the user's spec:\nwant:\n%s\ngot:\n%s", a, b)
			}
		})
	}
}

func TestApplyRefusesBadSpecs(t *testing.T) {
	tests := []struct {
		name, spec, want string
	}{
		{"no node sets", "  version: 9.3.2\n", "spec.nodeSets must list at least one node set"},
		{"config not a map", "  nodeSets:\n  - name: x\n    config: [1]\n", "spec.nodeSets[0] (x): config must be an object"},
		{"CA list of numbers", "  nodeSets:\n  - name: x\n    config:\n      xpack.security.remote_cluster_client.ssl.certificate_authorities: [1]\n",
			"certificate_authorities must be a list of paths"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Apply(es(t, tt.spec))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Apply error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestSnippet(t *testing.T) {
	s, err := Snippet(es(t, "  version: 9.3.2\n  nodeSets:\n  - name: default\n    count: 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"secretName: ccs-ecklink-remote-credentials", "name: ecklink-remote-ca", CAFilePath, "name: default"} {
		if !strings.Contains(s, want) {
			t.Errorf("snippet lacks %q:\n%s", want, s)
		}
	}
}

// A wired Elasticsearch whose links wait for the signing certificate gets a snippet that mounts
// it; without the extra volume the same Elasticsearch needs no snippet.
func TestSnippetWithSigningVolume(t *testing.T) {
	obj := es(t, "  version: 9.3.2\n  nodeSets:\n  - name: default\n    count: 1\n")
	if _, err := Apply(obj); err != nil {
		t.Fatal(err)
	}
	if s, err := Snippet(obj); err != nil || s != "" {
		t.Fatalf("Snippet(wired) = %q, %v; want none", s, err)
	}
	v := SigningVolume("ccs")
	s, err := Snippet(obj, v)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"secretName: " + v.Secret, "optional: true", "mountPath: " + v.MountPath(), "name: ecklink-remote-ca"} {
		if !strings.Contains(s, want) {
			t.Errorf("snippet lacks %q:\n%s", want, s)
		}
	}
	if _, err := ApplyVolume(obj, v); err != nil {
		t.Fatal(err)
	}
	if s, err := Snippet(obj, v); err != nil || s != "" {
		t.Fatalf("Snippet(wired with the volume) = %q, %v; want none", s, err)
	}
}

func nodeSetConfig(t *testing.T, obj *unstructured.Unstructured, i int) map[string]any {
	t.Helper()
	nodeSets, _, _ := unstructured.NestedSlice(obj.Object, "spec", "nodeSets")
	cfg, _ := nodeSets[i].(map[string]any)["config"].(map[string]any)
	return cfg
}
