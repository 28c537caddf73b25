package link

import "testing"

func TestExportCAResource(t *testing.T) {
	id := ExportCAID("data", "logs")
	if id == ExportCAID("data", "other") || len(id) != 32 {
		t.Fatalf("ExportCAID = %q: want 32 hex digits, distinct per Elasticsearch", id)
	}
	for _, tc := range []struct {
		key string
		ok  bool
	}{
		{key: ExportCAResource(id), ok: true},
		{key: "exportca/" + id + "/x"},
		{key: "exportca/ZZ"},
		{key: "credentials/apps/ccs/logs"},
		{key: "exportca/"},
	} {
		got, ok := ParseExportCAResource(tc.key)
		if ok != tc.ok || (ok && got != id) {
			t.Errorf("ParseExportCAResource(%q) = %q, %v; want ok %v", tc.key, got, ok, tc.ok)
		}
	}
}
