package exporter

import (
	"encoding/json"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/halves"
	"github.com/ecklink/ecklink/agent/link"
)

// sampleMeta is the metadata of a key of link apps/ccs/west-logs, made by west for east under
// the export data/logs.
func sampleMeta() keyMetadata {
	e := &Exporter{cfg: Config{Deps: halves.Deps{Environment: "west"}}}
	exp := &v1alpha1.ClusterExport{ObjectMeta: metav1.ObjectMeta{Namespace: "data", Name: "logs"}}
	return e.metadata("east", link.ID{Namespace: "apps", Elasticsearch: "ccs", Alias: "west-logs"}, exp, "0123abcd")
}

// TestKeyMetadataStoredForm: the map Elasticsearch gets is, byte for byte, the JSON earlier
// releases wrote (keys already stored must still be found and recognised), for a new key, a key
// made on request, and the in-place update of a key that records a request and fields this
// release does not write (an update replaces the whole metadata: only the request is kept).
func TestKeyMetadataStoredForm(t *testing.T) {
	const base = `"access_hash":"0123abcd","environment":"west","export":"data/logs","link":"apps/ccs/west-logs","managed_by":"ecklink","peer":"east"`
	for _, tc := range []struct {
		name string
		meta keyMetadata
		want string
	}{
		{name: "new key", meta: sampleMeta(),
			want: `{"ecklink":{` + base + `}}`},
		{name: "made on request", meta: sampleMeta().withRotation("req-1", false),
			want: `{"ecklink":{` + base + `,"rotation_request":"req-1"}}`},
		{name: "made on emergency request", meta: sampleMeta().withRotation("req-2", true),
			want: `{"ecklink":{` + base + `,"rotation_invalidate_old":"true","rotation_request":"req-2"}}`},
		{name: "emergency without a request is not recorded", meta: sampleMeta().withRotation("", true),
			want: `{"ecklink":{` + base + `}}`},
		{name: "in-place update keeps the request, drops unknown fields",
			meta: sampleMeta().keeping(parseKeyMetadata(map[string]any{metaRoot: map[string]any{
				"export": "data/old", "rotation_request": "req-3", "rotation_invalidate_old": "true", "grants": "old-field"},
				"other": "x"})),
			want: `{"ecklink":{` + base + `,"rotation_invalidate_old":"true","rotation_request":"req-3"}}`},
		{name: "in-place update of a key without a request",
			meta: sampleMeta().keeping(parseKeyMetadata(map[string]any{metaRoot: map[string]any{"rotation_invalidate_old": "true"}})),
			want: `{"ecklink":{` + base + `}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := json.Marshal(tc.meta.asMap())
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("stored metadata\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestKeyMetadataRoundTrip: what asMap writes, parseKeyMetadata reads back, also after a trip
// through JSON as Elasticsearch returns it.
func TestKeyMetadataRoundTrip(t *testing.T) {
	for _, m := range []keyMetadata{
		{},
		sampleMeta(),
		sampleMeta().withRotation("req-1", false),
		sampleMeta().withRotation("req-2", true),
	} {
		if got := parseKeyMetadata(m.asMap()); got != m {
			t.Errorf("parse(asMap()) = %+v, want %+v", got, m)
		}
		b, err := json.Marshal(m.asMap())
		if err != nil {
			t.Fatal(err)
		}
		var stored map[string]any
		if err := json.Unmarshal(b, &stored); err != nil {
			t.Fatal(err)
		}
		if got := parseKeyMetadata(stored); got != m {
			t.Errorf("parse(JSON(asMap())) = %+v, want %+v", got, m)
		}
	}
}

// TestParseKeyMetadata: stored metadata with fields missing, of another type, unknown or of
// another release reads as the fields it has; nothing fails.
func TestParseKeyMetadata(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stored map[string]any
		want   keyMetadata
	}{
		{name: "nil", stored: nil, want: keyMetadata{}},
		{name: "no root", stored: map[string]any{"owner": "someone"}, want: keyMetadata{}},
		{name: "root not an object", stored: map[string]any{metaRoot: "yes"}, want: keyMetadata{}},
		{name: "some fields missing",
			stored: map[string]any{metaRoot: map[string]any{"peer": "east", "link": "apps/ccs/west-logs"}},
			want:   keyMetadata{Peer: "east", Link: "apps/ccs/west-logs"}},
		{name: "extra and older fields ignored",
			stored: map[string]any{metaRoot: map[string]any{"managed_by": "ecklink", "environment": "west", "peer": "east",
				"link": "apps/ccs/west-logs", "export": "data/logs", "access_hash": "0123abcd", "version": "0.1.0", "grants": []any{"a"}},
				"team": "search"},
			want: sampleMeta()},
		{name: "fields of another type read as empty",
			stored: map[string]any{metaRoot: map[string]any{"peer": 5.0, "link": map[string]any{"a": "b"}, "rotation_invalidate_old": true}},
			want:   keyMetadata{}},
		{name: "emergency only as the string true",
			stored: map[string]any{metaRoot: map[string]any{"rotation_request": "req-1", "rotation_invalidate_old": "false"}},
			want:   keyMetadata{RotationRequest: "req-1"}},
		{name: "emergency request",
			stored: map[string]any{metaRoot: map[string]any{"rotation_request": "req-2", "rotation_invalidate_old": "true"}},
			want:   keyMetadata{RotationRequest: "req-2", RotationEmergency: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseKeyMetadata(tc.stored); got != tc.want {
				t.Errorf("parseKeyMetadata = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestKeyMetadataDiffers: a stored key differs when it lacks or differs in any field the export
// decides; its rotation fields and fields the agent does not write do not count.
func TestKeyMetadataDiffers(t *testing.T) {
	with := func(field string, v any) map[string]any {
		m := sampleMeta().asMap()
		root := m[metaRoot].(map[string]any)
		if v == nil {
			delete(root, field)
		} else {
			root[field] = v
		}
		return m
	}
	for _, tc := range []struct {
		name   string
		stored map[string]any
		want   bool
	}{
		{name: "same", stored: sampleMeta().asMap(), want: false},
		{name: "managed_by changed", stored: with("managed_by", "someone"), want: true},
		{name: "environment changed", stored: with("environment", "north"), want: true},
		{name: "peer changed", stored: with("peer", "south"), want: true},
		{name: "link changed", stored: with("link", "apps/ccs/other"), want: true},
		{name: "export changed", stored: with("export", "data/old"), want: true},
		{name: "access_hash changed", stored: with("access_hash", "ffff"), want: true},
		{name: "export missing", stored: with("export", nil), want: true},
		{name: "export not a string", stored: with("export", 1.0), want: true},
		{name: "missing root", stored: map[string]any{"other": map[string]any{"peer": "east"}}, want: true},
		{name: "no metadata", stored: nil, want: true},
		{name: "extra unknown field", stored: with("version", "0.1.0"), want: false},
		{name: "rotation request recorded", stored: with("rotation_request", "req-1"), want: false},
		{name: "emergency recorded", stored: with("rotation_invalidate_old", "true"), want: false},
		{name: "extra top-level object", stored: func() map[string]any { m := sampleMeta().asMap(); m["team"] = "search"; return m }(), want: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := sampleMeta().differs(parseKeyMetadata(tc.stored)); got != tc.want {
				t.Errorf("differs = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestKeyQueries: the queries name the stored fields as earlier releases did.
func TestKeyQueries(t *testing.T) {
	e := &Exporter{cfg: Config{Deps: halves.Deps{Environment: "west"}}}
	got, err := json.Marshal(e.linkQuery("east", link.ID{Namespace: "apps", Elasticsearch: "ccs", Alias: "west-logs"}))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"ecklink.environment":"west","ecklink.link":"apps/ccs/west-logs","ecklink.peer":"east"}`; string(got) != want {
		t.Errorf("linkQuery = %s, want %s", got, want)
	}
}
