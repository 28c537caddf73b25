package wiring

import (
	"maps"
	"testing"
)

func TestAliasCABundles(t *testing.T) {
	data, index := CABundleData(map[string]string{"logs": "A", "metrics": "A", "audit": "B"})
	if len(data) != 2 || data[CAEntryKey("A")] != "A" || data[CAEntryKey("B")] != "B" {
		t.Fatalf("CABundleData stores %v, want A and B once each", data)
	}
	for _, tc := range []struct {
		name        string
		data        map[string]string
		annotations map[string]string
		want        map[string]string
	}{
		{name: "indexed", data: data, annotations: map[string]string{AnnotationCAEntries: index},
			want: map[string]string{"logs": "A", "metrics": "A", "audit": "B"}},
		{name: "release 0.1.0: one key per alias, ca.crt is no alias", data: map[string]string{"logs.crt": "A", "audit.crt": "B", CAFileKey: "AB"},
			want: map[string]string{"logs": "A", "audit": "B"}},
		{name: "an index naming a missing key", data: map[string]string{}, annotations: map[string]string{AnnotationCAEntries: index},
			want: map[string]string{}},
		{name: "an unreadable index", data: data, annotations: map[string]string{AnnotationCAEntries: "{"},
			want: map[string]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := AliasCABundles(tc.data, tc.annotations); !maps.Equal(got, tc.want) {
				t.Fatalf("AliasCABundles = %v, want %v", got, tc.want)
			}
		})
	}
}
