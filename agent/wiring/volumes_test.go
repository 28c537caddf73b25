package wiring

import (
	"reflect"
	"testing"
)

func TestApplyAndRemoveVolume(t *testing.T) {
	for _, tc := range []struct {
		name    string
		spec    string
		v       Volume
		changes int // by ApplyVolume
		kept    int // user volumes left after RemoveVolume
	}{
		{name: "secret, two node sets", v: SigningVolume("ccs"), changes: 4,
			spec: "  version: 9.3.2\n  nodeSets:\n  - name: a\n  - name: b\n"},
		{name: "configmap next to a user volume", v: SigningCAVolume("logs"), changes: 2, kept: 1,
			spec: `  version: 9.3.2
  nodeSets:
  - name: a
    podTemplate:
      spec:
        volumes: [{name: mine, emptyDir: {}}]
        containers: [{name: elasticsearch, volumeMounts: [{name: mine, mountPath: /mine}]}]
`},
		{name: "the user mounted it already: nothing to do", v: SigningVolume("ccs"), kept: 1,
			spec: `  version: 9.3.2
  nodeSets:
  - name: a
    podTemplate:
      spec:
        volumes: [{name: ecklink-signing, secret: {secretName: ccs-ecklink-signing}}]
        containers: [{name: elasticsearch, volumeMounts: [{name: ecklink-signing, mountPath: /x}]}]
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := es(t, tc.spec)
			orig := obj.DeepCopy()
			changes, err := ApplyVolume(obj, tc.v)
			if err != nil || len(changes) != tc.changes {
				t.Fatalf("ApplyVolume = %v, %v; want %d changes", changes, err, tc.changes)
			}
			if !HasVolume(obj, tc.v) {
				t.Fatal("not mounted after ApplyVolume")
			}
			if again, _ := ApplyVolume(obj, tc.v); len(again) != 0 {
				t.Fatalf("second ApplyVolume changed %v", again)
			}
			if tc.changes > 0 {
				vols, _, _ := unstructuredSlice(obj, 0, "volumes")
				last := vols[len(vols)-1].(map[string]any)
				src, _ := last["secret"].(map[string]any)
				if src == nil {
					src, _ = last["configMap"].(map[string]any)
				}
				if src["optional"] != true {
					t.Fatalf("volume %v is not optional", last)
				}
			}
			if _, err := RemoveVolume(obj, tc.v); err != nil {
				t.Fatal(err)
			}
			vols, _, _ := unstructuredSlice(obj, 0, "volumes")
			if len(vols) != tc.kept {
				t.Fatalf("after RemoveVolume %d volumes, want %d: %v", len(vols), tc.kept, vols)
			}
			if tc.changes == 0 && !reflect.DeepEqual(obj.Object, orig.Object) {
				t.Fatalf("RemoveVolume changed what the user mounted:\n%v\n%v", obj.Object, orig.Object)
			}
			if _, ok := obj.GetAnnotations()[AnnotationVolumes]; ok {
				t.Fatal("record annotation left")
			}
		})
	}
}

func unstructuredSlice(obj interface{ UnstructuredContent() map[string]any }, i int, field string) ([]any, bool, error) {
	nodeSets := obj.UnstructuredContent()["spec"].(map[string]any)["nodeSets"].([]any)
	ns := nodeSets[i].(map[string]any)
	pt, _ := ns["podTemplate"].(map[string]any)
	spec, _ := pt["spec"].(map[string]any)
	v, ok := spec[field].([]any)
	return v, ok, nil
}
