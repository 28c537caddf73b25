package elastic

import (
	"encoding/json"
	"testing"
)

func TestAccessJSON(t *testing.T) {
	a := Access{
		Search: []SearchAccess{{
			Names: []string{"logs-*"}, Query: json.RawMessage(`{"term":{"a":"b"}}`),
			FieldSecurity: &FieldSecurity{Grant: []string{"*"}, Except: []string{"x"}}, AllowRestrictedIndices: true,
		}},
		Replication: []ReplicationAccess{{Names: []string{"r"}}},
	}
	want := `{"search":[{"names":["logs-*"],"query":{"term":{"a":"b"}},"field_security":{"grant":["*"],"except":["x"]},"allow_restricted_indices":true}],"replication":[{"names":["r"]}]}`
	if got := mustMarshal(a); got != want {
		t.Errorf("JSON =\n%s\nwant\n%s", got, want)
	}
	if (Access{}).IsEmpty() != true || a.IsEmpty() {
		t.Error("IsEmpty is wrong")
	}
}

func TestAccessHash(t *testing.T) {
	base := Access{
		Search: []SearchAccess{
			{Names: []string{"a", "b"}, Query: json.RawMessage(`{"term":{"x":"1"},"bool":{}}`)},
			{Names: []string{"c"}},
		},
		Replication: []ReplicationAccess{{Names: []string{"r1", "r2"}}},
	}
	same := []Access{
		{ // names, entries and query keys reordered, whitespace added
			Search: []SearchAccess{
				{Names: []string{"c"}},
				{Names: []string{"b", "a"}, Query: json.RawMessage(" {\"bool\":{}, \"term\":{\"x\":\"1\"}} ")},
			},
			Replication: []ReplicationAccess{{Names: []string{"r2", "r1"}}},
		},
	}
	different := []Access{
		{Search: base.Search},
		{Search: []SearchAccess{{Names: []string{"a", "b"}}, {Names: []string{"c"}}}, Replication: base.Replication},
		{Search: []SearchAccess{{Names: []string{"a", "b"}, Query: base.Search[0].Query, AllowRestrictedIndices: true}, {Names: []string{"c"}}}, Replication: base.Replication},
		{Search: []SearchAccess{{Names: []string{"a", "b", "d"}, Query: base.Search[0].Query}, {Names: []string{"c"}}}, Replication: base.Replication},
		{Search: []SearchAccess{{Names: []string{"a", "b"}, Query: base.Search[0].Query, FieldSecurity: &FieldSecurity{Grant: []string{"*"}}}, {Names: []string{"c"}}}, Replication: base.Replication},
	}
	h := AccessHash(base)
	if len(h) != 64 || h != AccessHash(base) {
		t.Fatalf("AccessHash = %q, not a stable SHA-256 hex", h)
	}
	for i, a := range same {
		if AccessHash(a) != h {
			t.Errorf("same[%d] hashes differently", i)
		}
	}
	for i, a := range different {
		if AccessHash(a) == h {
			t.Errorf("different[%d] hashes the same", i)
		}
	}
	// The input is not modified by canonicalisation.
	if base.Search[0].Names[0] != "a" || same[0].Search[0].Names[0] != "c" {
		t.Error("AccessHash modified its input")
	}
}

func TestQueryObject(t *testing.T) {
	tests := []struct{ in, want string }{
		{``, ``},
		{`null`, ``},
		{`"{\"term\":{\"category\":\"shared\"}}"`, `{"term":{"category":"shared"}}`},
		{`{ "term" : {"a":1} }`, `{"term":{"a":1}}`},
	}
	for _, tt := range tests {
		got, err := queryObject(json.RawMessage(tt.in))
		if err != nil || string(got) != tt.want {
			t.Errorf("queryObject(%s) = %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	if _, err := queryObject(json.RawMessage(`"{not json"`)); err == nil {
		t.Error("queryObject(bad string) err = nil")
	}
}
