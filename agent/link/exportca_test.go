package link

import (
	"strings"
	"testing"
)

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

func TestCAStatusResource(t *testing.T) {
	g := CAGroup{ExportCA: ExportCAID("data", "logs"), Namespace: "apps", Elasticsearch: "ccs"}
	for _, tc := range []struct {
		name, key string
		ok        bool // a castatus key
		err       string
	}{
		{name: "round trip", key: CAStatusResource(g), ok: true},
		{name: "other kind", key: "status/apps/ccs/logs"},
		{name: "exportca is not castatus", key: ExportCAResource(g.ExportCA)},
		{name: "missing elasticsearch", key: "castatus/" + g.ExportCA + "/apps", ok: true, err: "want castatus/<exportca id>/namespace/elasticsearch"},
		{name: "extra part", key: CAStatusResource(g) + "/x", ok: true, err: "want castatus"},
		{name: "bad id", key: "castatus/XYZ/apps/ccs", ok: true, err: "exportca id"},
		{name: "bad namespace", key: "castatus/" + g.ExportCA + "/Apps!/ccs", ok: true, err: "link namespace"},
		{name: "bad elasticsearch", key: "castatus/" + g.ExportCA + "/apps/-", ok: true, err: "link elasticsearch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, err := ParseCAStatusResource(tc.key)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("err = %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("err = %v, want it to name %q", err, tc.err)
			case tc.ok && tc.err == "" && got != g:
				t.Fatalf("group = %+v, want %+v", got, g)
			}
		})
	}
	if !g.Has(ID{Namespace: "apps", Elasticsearch: "ccs", Alias: "x"}, g.ExportCA) || g.Has(ID{Namespace: "apps", Elasticsearch: "other", Alias: "x"}, g.ExportCA) ||
		g.Has(ID{Namespace: "apps", Elasticsearch: "ccs", Alias: "x"}, ExportCAID("data", "other")) {
		t.Error("Has: want true only for a link of the group's Elasticsearch naming its bundle")
	}
}
