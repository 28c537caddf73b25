package elastic

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
)

// Access is the access of a cross-cluster API key, as the Elasticsearch API
// takes it (arrays of entries, snake_case JSON).
type Access struct {
	Search      []SearchAccess      `json:"search,omitempty"`
	Replication []ReplicationAccess `json:"replication,omitempty"`
}

// SearchAccess grants cross-cluster search on some indices.
type SearchAccess struct {
	Names []string `json:"names"`
	// Query is a document-level security query: a JSON object.
	Query                  json.RawMessage `json:"query,omitempty"`
	FieldSecurity          *FieldSecurity  `json:"field_security,omitempty"`
	AllowRestrictedIndices bool            `json:"allow_restricted_indices,omitempty"`
}

// FieldSecurity is field-level security of a search entry.
type FieldSecurity struct {
	Grant  []string `json:"grant,omitempty"`
	Except []string `json:"except,omitempty"`
}

// ReplicationAccess grants cross-cluster replication of some indices.
type ReplicationAccess struct {
	Names                  []string `json:"names"`
	AllowRestrictedIndices bool     `json:"allow_restricted_indices,omitempty"`
}

// IsEmpty reports whether a grants nothing (Elasticsearch rejects that).
func (a Access) IsEmpty() bool { return len(a.Search) == 0 && len(a.Replication) == 0 }

// AccessHash returns a stable hash of a (hex SHA-256 of a canonical JSON
// form), meant for key metadata to notice access changes. Index name lists,
// field lists and the order of entries do not change it; the formatting and
// key order of queries do not either. A query that is not valid JSON is
// hashed as given.
func AccessHash(a Access) string {
	b, _ := json.Marshal(canonicalAccess(a)) // plain structs and compacted raw JSON: cannot fail
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func canonicalAccess(a Access) Access {
	var out Access
	for _, s := range a.Search {
		c := SearchAccess{
			Names:                  sortedCopy(s.Names),
			Query:                  canonicalJSON(s.Query),
			AllowRestrictedIndices: s.AllowRestrictedIndices,
		}
		if s.FieldSecurity != nil {
			c.FieldSecurity = &FieldSecurity{Grant: sortedCopy(s.FieldSecurity.Grant), Except: sortedCopy(s.FieldSecurity.Except)}
		}
		out.Search = append(out.Search, c)
	}
	for _, r := range a.Replication {
		out.Replication = append(out.Replication, ReplicationAccess{Names: sortedCopy(r.Names), AllowRestrictedIndices: r.AllowRestrictedIndices})
	}
	sortByJSON(out.Search)
	sortByJSON(out.Replication)
	return out
}

func sortedCopy(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// sortByJSON orders entries by their JSON encoding (entries are few).
func sortByJSON[T any](s []T) {
	slices.SortStableFunc(s, func(x, y T) int {
		bx, _ := json.Marshal(x)
		by, _ := json.Marshal(y)
		return bytes.Compare(bx, by)
	})
}

// canonicalJSON re-encodes raw with sorted object keys; raw that is not
// valid JSON is returned as a JSON string so it still hashes deterministically.
func canonicalJSON(raw json.RawMessage) json.RawMessage {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		b, _ := json.Marshal(string(raw))
		return b
	}
	b, _ := json.Marshal(v)
	return b
}

// esAccess is access as Elasticsearch returns it: query is a JSON-encoded
// string there (an object is accepted too).
type esAccess struct {
	Search []struct {
		Names                  []string        `json:"names"`
		Query                  json.RawMessage `json:"query"`
		FieldSecurity          *FieldSecurity  `json:"field_security"`
		AllowRestrictedIndices bool            `json:"allow_restricted_indices"`
	} `json:"search"`
	Replication []ReplicationAccess `json:"replication"`
}

func (e *esAccess) toAccess() (Access, error) {
	var a Access
	for _, s := range e.Search {
		q, err := queryObject(s.Query)
		if err != nil {
			return Access{}, err
		}
		a.Search = append(a.Search, SearchAccess{
			Names: s.Names, Query: q, FieldSecurity: s.FieldSecurity, AllowRestrictedIndices: s.AllowRestrictedIndices,
		})
	}
	a.Replication = e.Replication
	return a, nil
}

// queryObject turns ES's string-encoded query back into a compact object.
func queryObject(raw json.RawMessage) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("failed to decode access query: %w", err)
		}
		raw = []byte(s)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, fmt.Errorf("failed to decode access query: %w", err)
	}
	return buf.Bytes(), nil
}
